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

The parent only supervises:

- A worker that dies is replaced after a backoff that doubles with each consecutive death
  (:data:`BACKOFF_FIRST` up to :data:`BACKOFF_CAP`) and starts again from the beginning once a
  worker stayed up :data:`STABLE_AFTER` seconds. The other workers keep serving meanwhile.
- A worker tells why it stopped by its exit code: :data:`EXIT_DEPENDENCY` when its start-up
  failed because PostgreSQL or Redis does not answer (an outage: retried for as long as it
  lasts, never a reason to stop), :data:`EXIT_STARTUP` when it failed for another reason. The
  supervisor gives up (exit 1) only when no worker is left and the last :data:`STARTUP_LIMIT`
  deaths were such other start-up failures: a bug or bad configuration that retrying cannot fix.
- After a worker died unexpectedly it asks a surviving worker (``SIGUSR1``) to reconcile the
  routing counts with PostgreSQL (:mod:`leadroute.routing.reconcile`): a worker killed between
  its Redis claim and its commit leaves a count one too high.
- Workers die with it: each asks the kernel for SIGTERM when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), so ``kill -9`` of the supervisor leaves nothing serving
  unsupervised.

Metrics: with several workers, each one's Prometheus samples would be its own, and a scrape of
``/metrics`` reaches one worker at random. :func:`multiprocess_metrics` (called before
``prometheus_client`` is imported) points ``PROMETHEUS_MULTIPROC_DIR`` at a directory emptied for
this run (a fresh temporary one unless the variable names one), so every worker writes its
samples there and any worker's ``/metrics`` sums them all; the supervisor marks a dead worker's
live gauges dead (``multiprocess.mark_process_dead``) and removes a directory it made at exit.

SIGTERM or SIGINT drains: the listening socket closes, every worker stops accepting, finishes
its in-flight requests (up to ``LEADROUTE_DRAIN_SECONDS``), answers them with
``Connection: close`` and closes idle keep-alive connections (uvicorn's graceful shutdown); the
caller then stops the embedded servers, if it runs them, last.

One module: the single-process path, the supervisor and the workers it forks share the uvicorn
set-up and the SIGTERM handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from leadroute.config import Settings
from leadroute.errors import CommandError

__all__ = ["EXIT_DEPENDENCY", "EXIT_STARTUP", "backoff", "multiprocess_metrics", "run_server"]

log = logging.getLogger("leadroute")

EXIT_DEPENDENCY = 75
"""A worker's (or the single process's) start-up failed because PostgreSQL or Redis does not
answer: retry later (``EX_TEMPFAIL`` of sysexits.h)."""
EXIT_STARTUP = 3
"""A worker's start-up failed for another reason (the log above it says which)."""
BACKOFF_FIRST = 0.5
"""Seconds before replacing a worker after the first death of a run of them."""
BACKOFF_CAP = 30.0
"""The longest wait before replacing a worker."""
STABLE_AFTER = 60.0
"""A worker that stayed up this long ends a run of deaths: the next one waits BACKOFF_FIRST."""
STARTUP_LIMIT = 5
"""Consecutive non-dependency start-up failures, with no worker left, that stop the service."""
RECONCILE_AFTER = 3.0
"""A worker asked to reconcile must have been up this long (its signal handler is installed)."""
_POLL = 0.2
_PR_SET_PDEATHSIG = 1


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def backoff(deaths: int) -> float:
    """Seconds to wait before replacing a worker after ``deaths`` consecutive deaths (1, 2, ...)."""
    return float(min(BACKOFF_FIRST * 2 ** max(deaths - 1, 0), BACKOFF_CAP))


MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_made_metrics_dir: Path | None = None


def multiprocess_metrics(workers: int) -> Path | None:
    """With ``workers`` > 1, an empty ``PROMETHEUS_MULTIPROC_DIR`` for this run (see the module
    docstring); None with one worker. Must run before ``prometheus_client`` is imported: it picks
    its value store (in memory, or files in that directory) at import."""
    global _made_metrics_dir  # noqa: PLW0603  (one per serving process)
    if workers <= 1:
        return None
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the workers' metrics directory was set")
    given = os.environ.get(MULTIPROC_VARIABLE)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's samples would be summed in
            stale.unlink()
    else:
        path = _made_metrics_dir = Path(tempfile.mkdtemp(prefix="leadroute-metrics-"))
    os.environ[MULTIPROC_VARIABLE] = str(path)
    return path


def _mark_dead(pid: int) -> None:
    """A worker is gone: its live gauges (requests in progress) no longer count."""
    if os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def run_server(app: Any, settings: Settings) -> int:
    """Serve ``app`` until SIGTERM or SIGINT; the exit code for the CLI."""
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal. Turning that
    # re-raise into an exception lets the caller stop the embedded servers cleanly before exit.
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        if settings.workers == 1:
            server = _uvicorn(app, settings)
            _run(server)
            return 0 if server.started else _startup_failure(settings)
        return _Supervisor(app, settings).run()
    except (_Stop, KeyboardInterrupt):
        log.info("stopped by signal")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


class _CloseWhenStopping:
    """ASGI wrapper: once the server is shutting down, responses say ``Connection: close``.

    uvicorn's graceful shutdown (h11) lets an in-flight request finish and then closes the
    connection without telling the client; a keep-alive client may already be sending its next
    request on it. The header tells it to open a new connection (to another instance) instead.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: uvicorn.Server | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Any) -> None:
            if (
                message["type"] == "http.response.start"
                and self.server is not None
                and self.server.should_exit
            ):
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


def _uvicorn(app: Any, settings: Settings) -> uvicorn.Server:
    wrapped = _CloseWhenStopping(app)
    config = uvicorn.Config(
        wrapped,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        server_header=False,  # no "server: uvicorn" banner on responses
        log_config=None,  # uvicorn's loggers go to the root handler the CLI set up: one format
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
        loop="uvloop",  # measured faster than asyncio's loop (docs/benchmarks.md)
        http="httptools",  # measured faster than h11
        access_log=settings.access_log,  # a line per request costs a worker ~10% at load
    )
    wrapped.server = uvicorn.Server(config)
    return wrapped.server


def _run(server: uvicorn.Server, sock: socket.socket | None = None) -> None:
    """``server.run``; a failed start-up returns (``server.started`` is False) rather than exiting."""
    try:
        server.run(sockets=[sock] if sock is not None else None)
    except SystemExit:  # uvicorn's sys.exit(3) when the app's start-up failed (it logged why)
        if server.started:
            raise


def _startup_failure(settings: Settings) -> int:
    """The exit code of a failed start-up: :data:`EXIT_DEPENDENCY` if a dependency is down."""
    down = asyncio.run(_unreachable(settings))
    if down:
        log.warning("start-up failed: %s does not answer (exit code %d: retry later)", down, EXIT_DEPENDENCY)
        return EXIT_DEPENDENCY
    return EXIT_STARTUP


async def _unreachable(settings: Settings) -> str | None:
    """The first of PostgreSQL and Redis that does not answer (a connection error), or None.

    Any other error (a bad password, a bug) is not an outage: retrying later would not help.
    """
    from leadroute.outage import dependency_down
    from leadroute.store.db import connect
    from leadroute.store.redis_client import redis_client

    assert settings.database_url is not None
    assert settings.redis_url is not None
    try:
        conn = await connect(settings.database_url, timeout=3)
        await conn.close()
    except Exception as exc:
        if dependency_down(exc):
            return "PostgreSQL"
    try:
        redis = redis_client(settings.redis_url)
        try:
            await redis.ping()
        finally:
            await redis.aclose()
    except Exception as exc:
        if dependency_down(exc):
            return "Redis"
    return None


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(0)


@dataclass(slots=True)
class _Worker:
    pid: int
    started: float


class _Supervisor:
    """Fork the workers onto one listening socket, replace the ones that die, stop them all."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.workers: dict[int, _Worker] = {}
        self.due: list[float] = []
        """When each replacement is to be started (monotonic)."""
        self.deaths = 0
        """Consecutive worker deaths, for the backoff."""
        self.startup_failures = 0
        """Consecutive non-dependency start-up failures."""
        self.reconcile = False
        self.stopping = False
        self.failed = False
        self.stop_timeout = settings.drain_seconds + 10

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
            if _made_metrics_dir is not None:
                shutil.rmtree(_made_metrics_dir, ignore_errors=True)

    def _fork(self, sock: socket.socket) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = EXIT_STARTUP
            self.workers = {}  # its siblings are not its to signal
            try:
                _die_with_parent(parent)
                signal.signal(signal.SIGTERM, _raise_stop)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until the reconciler handles it
                server = _uvicorn(self.app, self.settings)
                _run(server, sock)
                code = 0 if server.started else _startup_failure(self.settings)
            except (_Stop, KeyboardInterrupt):
                code = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = _Worker(pid, time.monotonic())

    def _supervise(self, sock: socket.socket) -> int:
        # Only the workers' pids are waited for: the embedded servers are children of this
        # process too, and reaping one of them here would hide its exit from its owner.
        while self.workers or (self.due and not self.stopping):
            time.sleep(_POLL)
            for worker in list(self.workers.values()):
                done, status = os.waitpid(worker.pid, os.WNOHANG)
                if done != 0:
                    del self.workers[worker.pid]
                    _mark_dead(worker.pid)
                    if not self.stopping:
                        self._died(worker, status)
            if self.stopping:
                sock.close()  # new connections are refused at once, not queued for nobody
                continue
            now = time.monotonic()
            for when in [w for w in self.due if w <= now]:
                self.due.remove(when)
                self._fork(sock)
            self._ask_reconcile(now)
        return 1 if self.failed else 0

    def _died(self, worker: _Worker, status: int) -> None:
        now = time.monotonic()
        if now - worker.started >= STABLE_AFTER:
            self.deaths = 0
        self.deaths += 1
        delay = backoff(self.deaths)
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_DEPENDENCY:
            self.startup_failures = 0
            log.warning(
                "worker %d could not start: PostgreSQL or Redis does not answer; another in %.1f s "
                "(%d serving)",
                worker.pid,
                delay,
                len(self.workers),
            )
        elif code == EXIT_STARTUP:
            self.startup_failures += 1
            if not self.workers and self.startup_failures >= STARTUP_LIMIT:
                log.error(
                    "%d workers in a row failed to start, none is serving; stopping (the log above says why)",
                    self.startup_failures,
                )
                self.failed = self.stopping = True
                self.due.clear()
                return
            log.error("worker %d failed to start; another in %.1f s", worker.pid, delay)
        else:
            self.startup_failures = 0
            self.reconcile = True
            log.warning("worker %d exited (%s); another in %.1f s", worker.pid, _describe(status), delay)
        self.due.append(now + delay)

    def _ask_reconcile(self, now: float) -> None:
        """Ask a worker that has been up a while to reconcile the routing counts."""
        if not self.reconcile:
            return
        for worker in self.workers.values():
            if now - worker.started >= RECONCILE_AFTER:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGUSR1)
                    log.info("asked worker %d to reconcile the routing counts after a crash", worker.pid)
                    self.reconcile = False
                return

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
        """Wait for every worker; kill those still running after the drain time and a margin."""
        if not self.workers:
            return
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while self.workers:
            for pid in list(self.workers):
                if os.waitpid(pid, os.WNOHANG)[0] != 0:
                    del self.workers[pid]
            if self.workers and time.monotonic() > deadline:
                log.warning(
                    "killing %d workers that did not stop in %.0f s", len(self.workers), self.stop_timeout
                )
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
