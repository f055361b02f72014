"""Run the HTTP server: in this process, or as a parent that forks ``LEADROUTE_WORKERS`` workers.

The caller has already loaded the ruleset (parsed, type-checked and compiled it) and built the
app, so the workers are forked with both in memory: none of them pays for rule-engine's parser
build (~0.5 s at import) or the compile, and copy-on-write shares the code between them.

Each worker is a whole instance. The app's lifespan runs after the fork, so every worker opens
its own PostgreSQL pool and Redis client and runs its own ruleset listener and SLA scheduler,
exactly as separate ``leadroute serve`` processes behind a load balancer would; routing (Lua
pick-and-claim scripts) and timers (``FOR UPDATE SKIP LOCKED``) are built for that. The workers
accept connections on one listening socket that the parent binds, and the kernel spreads the
connections between them.

The parent only supervises. A worker that dies is replaced; one that keeps dying (for example,
because PostgreSQL refuses every connection at start-up) stops the service with exit code 1
rather than spinning. SIGTERM or SIGINT stops every worker gracefully (in-flight requests
finish), and the caller then stops the embedded servers, if it runs them, last.

One module: the single-process path, the supervisor and the workers it forks share the uvicorn
set-up and the SIGTERM handling, and together they are ~200 lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from types import FrameType
from typing import Any

import uvicorn

from leadroute.config import Settings
from leadroute.errors import CommandError

__all__ = ["run_server"]

log = logging.getLogger("leadroute")

CRASH_WINDOW = 30.0
"""Seconds over which worker deaths are counted."""
CRASH_LIMIT = 5
"""Unexpected worker deaths within ``CRASH_WINDOW`` that stop the service."""
STOP_TIMEOUT = 30.0
"""Seconds a worker may take to finish its requests after SIGTERM before it is killed."""
_POLL = 0.2


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_server(app: Any, settings: Settings) -> int:
    """Serve ``app`` until SIGTERM or SIGINT; the exit code for the CLI."""
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal. Turning that
    # re-raise into an exception lets the caller stop the embedded servers cleanly before exit.
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        if settings.workers == 1:
            server = _uvicorn(app, settings)
            server.run()
            return 0 if server.started else 1  # the app's start-up failed (logged by uvicorn)
        return _Supervisor(app, settings).run()
    except (_Stop, KeyboardInterrupt):
        log.info("stopped by signal")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _uvicorn(app: Any, settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        server_header=False,  # no "server: uvicorn" banner on responses
        log_config=None,  # uvicorn's loggers go to the root handler the CLI set up: one format
        lifespan="on",
    )
    return uvicorn.Server(config)


class _Supervisor:
    """Fork the workers onto one listening socket, replace the ones that die, stop them all."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.workers: set[int] = set()
        self.deaths: deque[float] = deque(maxlen=CRASH_LIMIT)
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        sock = _listen(self.settings.host, self.settings.port)
        handlers = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info("starting %d worker processes", self.settings.workers)
            for _ in range(self.settings.workers):
                self._fork(sock)
            return self._supervise(sock)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self._reap_all()
            sock.close()

    def _fork(self, sock: socket.socket) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            self.workers = set()  # its siblings are not its to signal
            try:
                signal.signal(signal.SIGTERM, _raise_stop)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                server = _uvicorn(self.app, self.settings)
                server.run(sockets=[sock])
                code = 0 if server.started else 1
            except (_Stop, KeyboardInterrupt):
                code = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers.add(pid)

    def _supervise(self, sock: socket.socket) -> int:
        # Only the workers' pids are waited for: the embedded servers are children of this
        # process too, and reaping one of them here would hide its exit from its owner.
        while self.workers:
            time.sleep(_POLL)
            for pid in list(self.workers):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
                self.workers.discard(pid)
                if self.stopping:
                    continue
                log.warning("worker %d exited (%s); starting another", pid, _describe(status))
                now = time.monotonic()
                self.deaths.append(now)
                if len(self.deaths) == CRASH_LIMIT and now - self.deaths[0] < CRASH_WINDOW:
                    log.error(
                        "%d workers died within %.0f s; stopping (the log above says why)",
                        CRASH_LIMIT,
                        CRASH_WINDOW,
                    )
                    self._signal_all(signal.SIGTERM)
                    self.stopping = True
                    self.failed = True
                    continue
                self._fork(sock)
        return 1 if self.failed else 0

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("stopping %d workers (%s)", len(self.workers), signal.Signals(signum).name)
        self.stopping = True
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):  # it exited; waitpid will tell
                os.kill(pid, sig)

    def _reap_all(self) -> None:
        """Wait for every worker; kill those still running after ``STOP_TIMEOUT``."""
        if not self.workers:
            return
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.workers:
            for pid in list(self.workers):
                if os.waitpid(pid, os.WNOHANG)[0] != 0:
                    self.workers.discard(pid)
            if self.workers and time.monotonic() > deadline:
                log.warning("killing %d workers that did not stop in %.0f s", len(self.workers), STOP_TIMEOUT)
                self._signal_all(signal.SIGKILL)
                deadline = float("inf")
            time.sleep(_POLL)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
