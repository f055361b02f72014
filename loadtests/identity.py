"""Which Locust process this is: a seed and user numbers of its own, even after a fork.

``locust --processes N`` imports the locustfile once and then forks N workers, so anything a
module computes at import (a random run seed, a class-level user counter, the ``random`` module's
state) is the same in every worker: they would post the same leads under the same Idempotency
keys. So nothing here is decided at import. :func:`process_identity` is called by a user's
``on_start``, in the worker, after the master has given it its index
(``environment.runner.worker_index``: 0, 1, ... in a distributed run, 0 in a single process),
and derives the process's seed from the run's seed and that index.
"""

from __future__ import annotations

import itertools
import os
import random
from typing import Any, NamedTuple

__all__ = ["RUN_SEED_VARIABLE", "ProcessIdentity", "process_identity", "process_seed", "run_seed"]

RUN_SEED_VARIABLE = "LEADROUTE_LOADTEST_SEED"
"""Environment variable with the run's seed (the runner sets it); unset: a random one per run."""

_WORKERS_PER_RUN = 1000
"""Process seeds are ``run_seed * 1000 + worker_index``: distinct for up to 1000 processes."""


class ProcessIdentity(NamedTuple):
    seed: int
    """This process's seed: lead indexes and Idempotency keys are drawn under it."""
    worker: int
    """``runner.worker_index``: 0, 1, ... (0 without ``--processes``)."""
    users: itertools.count[int]
    """Numbers of this process's users, 1, 2, ..."""


def run_seed(environ: dict[str, str] | None = None) -> int:
    """The run's seed: ``LEADROUTE_LOADTEST_SEED``, or a fresh random one (fixed per process)."""
    value = (environ if environ is not None else os.environ).get(RUN_SEED_VARIABLE)
    if value:
        return int(value)
    global _RANDOM_RUN_SEED  # noqa: PLW0603  (drawn once per process, on first use)
    if _RANDOM_RUN_SEED is None:
        _RANDOM_RUN_SEED = random.SystemRandom().randrange(2**32)
    return _RANDOM_RUN_SEED


_RANDOM_RUN_SEED: int | None = None


def process_seed(seed: int, worker: int) -> int:
    """The seed of worker ``worker`` in a run seeded ``seed``: distinct for every worker."""
    if not 0 <= worker < _WORKERS_PER_RUN:
        raise ValueError(f"worker index {worker} is out of range")
    return seed * _WORKERS_PER_RUN + worker


_IDENTITY: tuple[int, ProcessIdentity] | None = None  # (pid, identity): a fork must not reuse it


def process_identity(environment: Any) -> ProcessIdentity:
    """This process's identity (made on first use in each process, from its runner's worker index).

    With no run seed in the environment, the parent draws a random one before forking (on first
    use there) or, if it never used one, each worker draws its own: either way distinct per worker.
    """
    global _IDENTITY  # noqa: PLW0603  (one identity per process)
    pid = os.getpid()
    if _IDENTITY is None or _IDENTITY[0] != pid:
        runner = getattr(environment, "runner", None)
        worker = int(getattr(runner, "worker_index", 0) or 0)
        _IDENTITY = (pid, ProcessIdentity(process_seed(run_seed(), worker), worker, itertools.count(1)))
    return _IDENTITY[1]
