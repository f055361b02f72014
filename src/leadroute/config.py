"""Settings, parsed once from ``LEADROUTE_*`` environment variables into one frozen object.

Nothing else in leadroute reads the environment: ``Settings.from_env()`` is called by the CLI
and the result is passed down. A bad value fails at start-up with a message naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec

from leadroute.errors import SettingsError

__all__ = ["PREFIX", "EvaluatorName", "Settings", "SettingsError"]

PREFIX = "LEADROUTE_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
EvaluatorName = Literal["compiled", "rule-engine"]
"""How rule expressions are evaluated (``rules.evaluator.evaluator_for`` turns it into one)."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything leadroute can be configured with; one field per ``LEADROUTE_<NAME>`` variable."""

    host: str = "127.0.0.1"
    """Interface the HTTP server binds to."""
    port: int = msgspec.field(default=8000)
    """TCP port of the HTTP server."""
    workers: int = 1
    """HTTP worker processes. More than 1: ``leadroute serve`` loads and compiles the ruleset,
    then forks this many workers onto one listening socket; each is a whole instance with its
    own PostgreSQL pool (so up to ``workers`` x ``db_pool_max`` connections) and Redis client."""
    database_url: str | None = None
    """PostgreSQL DSN. Unset together with ``redis_url``: embedded servers are started."""
    redis_url: str | None = None
    """Redis URL (``redis://``, ``rediss://`` or ``unix://``). Unset: embedded server."""
    rules_path: Path = Path("rules")
    """A ruleset file, or a directory holding exactly one."""
    data_dir: Path = Path(".leadroute")
    """Where the embedded servers keep their data (ignored when the URLs are set)."""
    seed_demo: bool = True
    """Seed demo owners and pools on the embedded default's first start with an empty database."""
    demo_owners_file: Path = Path("examples/owners.yaml")
    """The owners file used for the demo seed."""
    redis_prefix: str = "lr"
    """Prefix of every Redis key leadroute writes, so several deployments can share one Redis."""
    db_pool_min: int = 2
    """Minimum PostgreSQL connections per process."""
    db_pool_max: int = 20
    """Maximum PostgreSQL connections per process."""
    ready_timeout: float = 1.0
    """Seconds each dependency may take to answer ``/health/ready``."""
    log_level: LogLevel = "INFO"
    """Root log level."""
    rules_evaluator: EvaluatorName = "compiled"
    """How rule expressions are evaluated: compiled to Python (default) or by rule-engine's own
    tree walker (same results, ~30x slower; for comparison). Commands and the ruleset sync load
    rulesets with ``rules.evaluator.evaluator_for(settings.rules_evaluator)``."""
    ruleset_poll_interval: float = 5.0
    """Seconds between checks of the fleet's active ruleset: the fallback when a LISTEN/NOTIFY
    activation message was missed (the listening connection is reconnected at the same pace)."""
    watch_rules: bool = False
    """Reload ``rules_path`` when it changes: a file that loads, names known pools and passes its
    tests is published and activated fleet-wide; otherwise the last good version stays active."""
    watch_interval: float = 2.0
    """Seconds between checks of ``rules_path`` when ``watch_rules`` is on."""
    sla_poll_seconds: float = 2.0
    """Seconds between SLA scheduler passes in each instance (a breach acts within this); 0: off."""
    sla_max_breaches: int = 3
    """The SLA breach of a lead that sends it to the fallback queue instead of another owner."""
    rescore_every_hours: float = 6.0
    """Hours between requalifications of a lead whose score holds decaying activity points (its
    stage can fall as they decay); the background pass runs every ``SLA_POLL_SECONDS``."""
    drain_batch: int = 50
    """Queued leads one instance offers again per background pass at most (the rest wait for the
    next pass), so a burst of freed capacity cannot starve intake of connections."""
    admin_key: str | None = msgspec.field(default=None)
    """An admin API key (``lr_live_<8 hex>_<secret of 32+ characters>``, e.g. from ``leadroute keys
    generate``) that every instance stores at start: for deployments that take their first key
    from a secret store, and for tests. Unset with no keys at all: the embedded default's first
    ``leadroute serve`` makes one and writes it to ``<data_dir>/admin.key`` (docs/security.md)."""
    key_cache_seconds: float = 5.0
    """Seconds an instance trusts a key it verified without asking PostgreSQL again: the bound on
    how long a revocation or rotation takes to reach every instance (0: ask every request)."""

    @property
    def rescore_every(self) -> timedelta:
        """:attr:`rescore_every_hours` as a duration."""
        return timedelta(hours=self.rescore_every_hours)

    @property
    def embedded(self) -> bool:
        """True when leadroute runs its own PostgreSQL and Redis (no URLs configured)."""
        return self.database_url is None and self.redis_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Parse ``LEADROUTE_*`` variables; unknown ``LEADROUTE_`` names are errors (typos)."""
        raw: dict[str, Any] = {}
        fields = {f.name for f in msgspec.structs.fields(cls)}
        for name, value in environ.items():
            if not name.startswith(PREFIX):
                continue
            key = name.removeprefix(PREFIX).lower()
            if key not in fields:
                raise SettingsError(f"{name}: unknown setting (known: {_known()})")
            raw[key] = value
        raw.update(overrides)
        if (raw.get("database_url") is None) != (raw.get("redis_url") is None):
            missing = "LEADROUTE_REDIS_URL" if raw.get("redis_url") is None else "LEADROUTE_DATABASE_URL"
            raise SettingsError(
                f"{missing}: must be set too — set both URLs for external servers, or neither "
                "for the embedded ones"
            )
        try:
            settings = msgspec.convert(raw, cls, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError as exc:
            raise SettingsError(_name_variable(str(exc))) from None
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check what types alone cannot."""
        if not 0 < self.port < 65536:
            raise SettingsError(f"{PREFIX}PORT: {self.port} is not a TCP port (1-65535)")
        if self.workers < 1:
            raise SettingsError(f"{PREFIX}WORKERS: must be at least 1")
        if not 1 <= self.db_pool_min <= self.db_pool_max:
            raise SettingsError(f"{PREFIX}DB_POOL_MIN: must be between 1 and {PREFIX}DB_POOL_MAX")
        if self.sla_poll_seconds < 0:
            raise SettingsError(f"{PREFIX}SLA_POLL_SECONDS: must be 0 (off) or a positive number of seconds")
        if self.sla_max_breaches < 1:
            raise SettingsError(f"{PREFIX}SLA_MAX_BREACHES: must be at least 1")
        if self.rescore_every_hours <= 0:
            raise SettingsError(f"{PREFIX}RESCORE_EVERY_HOURS: must be a positive number of hours")
        if self.drain_batch < 1:
            raise SettingsError(f"{PREFIX}DRAIN_BATCH: must be at least 1")
        self._validate_access()
        if self.ready_timeout <= 0:
            raise SettingsError(f"{PREFIX}READY_TIMEOUT: must be a positive number of seconds")
        if self.ruleset_poll_interval <= 0:
            raise SettingsError(f"{PREFIX}RULESET_POLL_INTERVAL: must be a positive number of seconds")
        if self.watch_interval <= 0:
            raise SettingsError(f"{PREFIX}WATCH_INTERVAL: must be a positive number of seconds")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgres://", "postgresql://")
        ):
            raise SettingsError(f"{PREFIX}DATABASE_URL: expected a postgresql:// URL")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"{PREFIX}REDIS_URL: expected a redis://, rediss:// or unix:// URL")

    def _validate_access(self) -> None:
        if self.key_cache_seconds < 0:
            raise SettingsError(
                f"{PREFIX}KEY_CACHE_SECONDS: must be 0 (no cache) or a positive number of seconds"
            )
        if self.admin_key is not None:
            from leadroute.access._tokens import parse_key  # only when set: keeps the CLI light

            if parse_key(self.admin_key) is None:
                raise SettingsError(
                    f"{PREFIX}ADMIN_KEY: expected lr_live_<8 hex digits>_<secret of 32+ URL-safe characters> "
                    "(make one with `leadroute keys generate`)"
                )


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise NotImplementedError(kind)


def _known() -> str:
    return ", ".join(PREFIX + f.name.upper() for f in msgspec.structs.fields(Settings))


def _name_variable(message: str) -> str:
    """Turn msgspec's ``... - at `$.port``` into ``LEADROUTE_PORT: ...``."""
    text, _, path = message.rpartition(" - at `$.")
    if not path:
        return message
    return f"{PREFIX}{path.rstrip('`').upper()}: {text}"
