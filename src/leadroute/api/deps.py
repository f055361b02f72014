"""Dependencies handlers receive: the runtime built by the lifespan."""

from __future__ import annotations

from litestar.datastructures import State

from leadroute.runtime import Runtime

__all__ = ["provide_runtime"]


def provide_runtime(state: State) -> Runtime:
    """The instance's Runtime, stored on the app state at start-up."""
    runtime: Runtime = state.runtime
    return runtime
