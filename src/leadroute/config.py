"""Settings, parsed once from ``LEADROUTE_*`` environment variables into one frozen object.

Nothing else in leadroute reads the environment: ``Settings.from_env()`` is called by the CLI
and the result is passed down. A bad value fails at start-up with a message naming the variable,
and a misspelled name with the setting it probably meant.

Kubernetes injects "service link" variables for every Service in the namespace: for a Service
named ``leadroute`` that is ``LEADROUTE_SERVICE_HOST``, ``LEADROUTE_SERVICE_PORT[_<NAME>]``,
``LEADROUTE_PORT=tcp://10.0.0.1:8000`` and ``LEADROUTE_PORT_8000_TCP[_PROTO|_PORT|_ADDR]``.
They share our prefix but are not settings: exactly those shapes are skipped
(:func:`service_links` names them so the CLI logs one note), and ``LEADROUTE_PORT`` is the port
setting only when it is a number, never when it is a ``tcp://`` link.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec

from leadroute.errors import SettingsError
from leadroute.limits import parse_limit, parse_scope_limits

__all__ = ["PREFIX", "EvaluatorName", "Handling", "Settings", "SettingsError", "service_links"]

PREFIX = "LEADROUTE_"
SECRET_FIELDS = frozenset(
    {
        "admin_key",
        "api_key",
        "hubspot_token",
        "salesforce_client_secret",
        "smtp_password",
        "slack_webhook_url",
        "secret_key",
        "secret_keys_old",
        "database_url",
        "redis_url",
    }
)
"""Settings whose values are credentials (the URLs may carry a password): masked in the repr."""
MAX_BATCH_CHUNK = 64
"""PostgreSQL caches 64 subtransactions per backend (``PGPROC_MAX_CACHED_SUBXIDS``)."""
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Handling = Literal["warn", "reject"]
"""What intake does with a field it cannot use but a lead can live without (docs/intake.md)."""
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
    allow_embedded: bool = True
    """With no URLs set, start embedded servers (the local default). The container image sets it
    to false: a missing URL there is a configuration error, not a throw-away database."""
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
    access_log: bool = False
    """A log line per HTTP request (method, path, status): off by default, as its cost shows at load;
    metrics (``/metrics``) and traces cover what it would tell."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line, with the trace and span ids of the current request."""
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
    sla_warn_before_minutes: int = 5
    """Minutes before an SLA deadline that the owner (and the pool's ``escalate_to``) is warned the
    lead is about to breach (``lead.sla_warning``: Slack, email, webhooks); counted in working hours
    when the deadline is. 0, or not shorter than the SLA: no warning."""
    """The SLA breach of a lead that sends it to the fallback queue instead of another owner."""
    otlp_traces_endpoint: str | None = None
    """Where traces go (OTLP/HTTP): the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``; not a ``LEADROUTE_`` variable. Unset: no
    tracing, at no cost."""
    db_acquire_timeout: float = 2.0
    """Seconds a change waits for a pooled database connection; past it the request is answered
    503 with ``Retry-After`` (overloaded) instead of queueing."""
    rate_limit_address: str = "1000/s"
    """Requests one client address may make to ``/v1`` (``N/s``, ``N/m``, ``N/h``; ``0``: no
    limit), exact across every instance (Redis); past it, 429 with ``Retry-After``."""
    rate_limits: str = "default=500/s"
    """Requests one API key may make per route scope: ``scope=rate`` items, comma-separated
    (``leads:write=200/s, default=50/s``; ``default`` covers the scopes not named)."""
    max_in_flight: int = 256
    """``/v1`` requests one worker serves at once; the next gets 503 with ``Retry-After`` at once
    instead of waiting in a queue (admission control)."""
    group_commit: int = 1
    """Concurrent single-lead intakes one worker may write in one shared transaction (group commit;
    1, the default: each its own). Each lead is answered only after that COMMIT; when any lead of a
    group fails, the group rolls back and each of its leads is written again alone, so only the
    failing one gets an error. Up to ``db_pool_max`` groups are written at once. A throughput lever
    for floods of new leads; it costs latency under mixed load (docs/benchmarks.md)."""
    batch_chunk: int = 50
    """Leads of a ``POST /v1/leads:batch`` written per transaction, each in a savepoint (1-64):
    larger saves commits; smaller bounds how long a batch holds its keys and the routing lock. At
    most 64, PostgreSQL's cache of subtransactions per backend: past it every other session's
    snapshot overflows to ``pg_subtrans`` lookups while the chunk is open (docs/intake.md)."""
    rescore_every_hours: float = 6.0
    """Hours between requalifications of a lead whose score holds decaying activity points (its
    stage can fall as they decay); the background pass runs every ``SLA_POLL_SECONDS``."""
    match_by_name: bool = False
    """Match a lead event to the stored lead of the same person by normalized first + last name and
    company domain too, after email and phone (docs/intake.md). Off by default: two people with one
    name at one company exist, and a wrong merge hides a lead from its rep."""
    reengage_after_days: float = 90.0
    """Days after a person was last heard from (a lead event or an activity) that a new lead event
    of theirs makes a new lead (re-engagement, linked to the old one) instead of merging into it.
    A closed lead is always past it. 0: never by time (only closing ends a lead)."""
    drain_batch: int = 50
    """Queued leads one instance offers again per background pass at most (the rest wait for the
    next pass), so a burst of freed capacity cannot starve intake of connections."""
    drain_seconds: float = 20.0
    """After SIGTERM, seconds in-flight requests may take to finish (no new ones are accepted,
    keep-alive clients are answered with ``Connection: close``); then they are cut. Keep it below
    the orchestrator's grace period (Kubernetes: 30 s)."""
    reconcile_minutes: float = 10.0
    """Minutes between checks of the Redis routing counts against PostgreSQL (one instance at a
    time, under an advisory lock); drift is corrected and logged. 0: only after a worker crash."""
    outbound_poll_seconds: float = 1.0
    """Seconds between passes of the outbound relay in each instance (fan events of the log out to
    webhook endpoints and CRM connectors, send what is due); 0: off (nothing leaves this instance)."""
    outbound_concurrency: int = 16
    """Deliveries one instance sends at once at most (a slow endpoint holds one slot, not the relay)."""
    webhook_timeout: float = 10.0
    """Seconds one webhook or CRM request may take (connect, send, answer) before it counts as failed."""
    webhook_allow_private: bool = False
    """Let webhooks reach loopback, private, link-local and other non-public addresses (checked on
    the resolved address at every send). Off in production: an endpoint URL must not reach inside."""
    hubspot_token: str | None = None
    """A HubSpot private-app access token (scope ``crm.objects.contacts.write``): set, owners are
    written back to HubSpot contacts (``hubspot_owner_id``); unset, the HubSpot connector is off."""
    hubspot_base_url: str = "https://api.hubapi.com"
    """Where the HubSpot API is (tests point it at a local server)."""
    salesforce_client_id: str | None = None
    """The consumer key of a Salesforce connected app with the client credentials flow enabled;
    set with the secret and token URL, owners are written back to Salesforce Leads (``OwnerId``)."""
    salesforce_client_secret: str | None = None
    """The consumer secret of that connected app."""
    salesforce_token_url: str | None = None
    """The OAuth 2.0 token endpoint, ``https://<MyDomain>.my.salesforce.com/services/oauth2/token``."""
    salesforce_instance_url: str | None = None
    """Where the REST API is; unset: the ``instance_url`` the token endpoint answers with."""
    salesforce_api_version: str = "v62.0"
    """The REST API version in ``/services/data/<version>/sobjects/Lead/<Id>``."""
    mappings_path: Path = Path("mappings")
    """The directory of inbound mapping files (``hubspot.yaml``, ``salesforce.yaml``, ``webhook.yaml``,
    ``form.yaml``, ...), loaded and version-checked at start-up (docs/intake.md)."""
    hubspot_client_secret: str | None = None
    """The HubSpot app's client secret: set, ``POST /v1/inbound/hubspot`` takes webhook events
    signed with it (signature v3); unset, that route answers 404. Contacts are read with
    ``HUBSPOT_TOKEN``, whose private app then also needs the ``crm.objects.contacts.read`` scope."""
    salesforce_callout_secret: str | None = None
    """A shared secret (32+ random characters) Salesforce Flow/Apex callouts sign with
    (``X-Leadroute-Signature``); unset, JSON callouts to ``POST /v1/inbound/salesforce`` are refused."""
    salesforce_org_id: str | None = None
    """The Salesforce org (15- or 18-character id) whose Outbound Messages are taken; unset, they
    are refused."""
    salesforce_outbound_token: str | None = None
    """Optional: a random token Outbound Messages must carry in their URL (``?token=...``), since an
    org id alone is not a secret; set it in the Outbound Message's endpoint URL."""
    inbound_webhook_secrets: str | None = None
    """Standard Webhooks sources of ``POST /v1/inbound/webhook?source=NAME``: ``name=whsec_...``
    items, comma-separated, one secret per source (its mapping: ``NAME.yaml``, else ``webhook.yaml``)."""
    public_url: str = "http://127.0.0.1:8000"
    """Where people reach this service: the base of the links in alerts (``/v1/leads/{id}/explain``),
    and of the URL HubSpot signs (signature v3 covers the URL HubSpot posted to, as it wrote it)."""
    slack_webhook_url: str | None = None
    """A Slack incoming webhook (``https://hooks.slack.com/services/...``): set, reps are alerted
    in its channel when a lead is theirs or its SLA ran out; unset, the Slack connector is off."""
    alert_queue_threshold: int | None = None
    """Tell the Slack channel once when a pool has more leads than this waiting in its queue
    (again after the queue was back at or below it); unset: no queue alerts."""
    alert_queue_emails: str | None = None
    """Comma-separated addresses that get the queue-over-threshold alert by email too (with
    ``SMTP_HOST``); unset: that alert goes to Slack only."""
    alert_templates: Path | None = None
    """A YAML file of alert templates (one per event, ``$field`` placeholders) for Slack and email;
    unset: the ones shipped in the package (``leadroute/outbound/alerts.yaml``). Checked at start-up."""
    smtp_host: str | None = None
    """An SMTP server: set with ``SMTP_FROM``, reps are alerted by email (the owner's ``email``)."""
    smtp_port: int = 587
    """The SMTP server's port."""
    smtp_from: str | None = None
    """The ``From`` address of alert emails."""
    smtp_user: str | None = None
    """The SMTP login (with ``SMTP_PASSWORD``); unset: no login."""
    smtp_password: str | None = None
    """The SMTP password."""
    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS before logging in and sending."""
    admin_key: str | None = msgspec.field(default=None)
    """An admin API key (``lr_live_<8 hex>_<secret of 32+ characters>``, e.g. from ``leadroute keys
    generate``) that every instance stores at start: for deployments that take their first key
    from a secret store, and for tests. Unset with no keys at all: the embedded default's first
    ``leadroute serve`` makes one and writes it to ``<data_dir>/admin.key`` (docs/security.md)."""
    secret_key: str | None = None
    """The key that encrypts webhook secrets at rest (Fernet: 32 url-safe base64 bytes, e.g. from
    ``leadroute secrets generate-key``). Required when PostgreSQL is not embedded; the embedded
    default makes one on first start in ``<data_dir>/secret.key`` (mode 0600)."""
    secret_keys_old: str | None = None
    """Comma-separated previous values of ``SECRET_KEY``: still decrypt, never encrypt. Rotation:
    move the old key here, set a new ``SECRET_KEY``, restart; ``leadroute secrets reseal``
    re-encrypts every stored secret under the new key, then drop the old one."""
    api_key: str | None = None
    """The key client commands send to a running service (``leadroute leads import``; their
    ``--key`` wins). Unset: ``ADMIN_KEY``, else the embedded service's ``<data_dir>/admin.key``."""
    key_cache_seconds: float = 5.0
    """Seconds an instance trusts a key it verified without asking PostgreSQL again: the bound on
    how long a revocation or rotation takes to reach every instance (0: ask every request)."""
    invalid_phone: Handling = "warn"
    """A lead whose phone is not a valid number but whose email is valid: ``warn`` accepts it with
    a warning naming ``phone`` (kept as sent, no ``phone_e164``); ``reject`` answers 422. Without a
    valid email an invalid phone is always a 422 (docs/intake.md)."""
    invalid_website: Handling = "warn"
    """A website that is not a web address: ``warn`` accepts the lead with a warning (kept as sent,
    ``company_domain`` from the email); ``reject`` answers 422."""
    invalid_country: Handling = "warn"
    """A country that is neither an ISO 3166 code nor a known name: ``warn`` accepts the lead with a
    warning (stored without a country); ``reject`` answers 422."""

    @property
    def rescore_every(self) -> timedelta:
        """:attr:`rescore_every_hours` as a duration."""
        return timedelta(hours=self.rescore_every_hours)

    @property
    def reengage_after(self) -> timedelta | None:
        """:attr:`reengage_after_days` as a duration (None: never by time)."""
        return timedelta(days=self.reengage_after_days) if self.reengage_after_days > 0 else None

    @property
    def queue_emails(self) -> list[str]:
        """:attr:`alert_queue_emails` as a list of addresses."""
        text = self.alert_queue_emails or ""
        return [a.strip() for a in text.split(",") if a.strip()]

    def __repr__(self) -> str:
        """Every field, with the secrets (keys, tokens, passwords, the Slack URL) masked: a
        Settings logged or shown in a traceback never leaks them."""

        def shown(name: str) -> str:
            value = getattr(self, name)
            return "'***'" if name in SECRET_FIELDS and value is not None else repr(value)

        fields = ", ".join(f"{f.name}={shown(f.name)}" for f in msgspec.structs.fields(self))
        return f"Settings({fields})"

    __str__ = __repr__

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
            if not name.startswith(PREFIX) or _is_service_link(name, value):
                continue
            key = name.removeprefix(PREFIX).lower()
            if key not in fields:
                raise SettingsError(_unknown(name, key, fields))
            raw[key] = value
        # OpenTelemetry's own standard variables say whether and where traces are exported (the
        # exporter reads the rest of the OTEL_* variables itself)
        if traces := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            raw["otlp_traces_endpoint"] = traces
        elif base := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            raw["otlp_traces_endpoint"] = base.rstrip("/") + "/v1/traces"  # as the OTLP/HTTP spec says
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
        if not 1 <= self.db_pool_min <= self.db_pool_max:
            raise SettingsError(f"{PREFIX}DB_POOL_MIN: must be between 1 and {PREFIX}DB_POOL_MAX")
        for name, value, at_least, at_most, why in (
            ("workers", self.workers, 1, None, ""),
            ("sla_max_breaches", self.sla_max_breaches, 1, None, ""),
            ("drain_batch", self.drain_batch, 1, None, ""),
            ("max_in_flight", self.max_in_flight, 1, None, ""),
            ("group_commit", self.group_commit, 1, MAX_BATCH_CHUNK, " (leads per shared transaction)"),
            ("sla_warn_before_minutes", self.sla_warn_before_minutes, 0, None, ""),
            (
                "batch_chunk",
                self.batch_chunk,
                1,
                MAX_BATCH_CHUNK,
                " (the savepoints per transaction PostgreSQL caches)",
            ),
        ):
            if value < at_least:
                raise SettingsError(f"{PREFIX}{name.upper()}: must be at least {at_least}")
            if at_most is not None and value > at_most:
                raise SettingsError(f"{PREFIX}{name.upper()}: at most {at_most}{why}")
        positive: tuple[tuple[str, float], ...] = (
            ("rescore_every_hours", self.rescore_every_hours),
            ("db_acquire_timeout", self.db_acquire_timeout),
            ("ready_timeout", self.ready_timeout),
            ("ruleset_poll_interval", self.ruleset_poll_interval),
            ("watch_interval", self.watch_interval),
            ("drain_seconds", self.drain_seconds),
        )
        for name, number in positive:
            if number <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()}: must be a positive number")
        optional: tuple[tuple[str, float], ...] = (
            ("sla_poll_seconds", self.sla_poll_seconds),
            ("reconcile_minutes", self.reconcile_minutes),
            ("reengage_after_days", self.reengage_after_days),
        )
        for name, number in optional:
            if number < 0:
                raise SettingsError(f"{PREFIX}{name.upper()}: must be 0 (off) or a positive number")
        parse_limit(self.rate_limit_address, setting=f"{PREFIX}RATE_LIMIT_ADDRESS")
        parse_scope_limits(self.rate_limits, setting=f"{PREFIX}RATE_LIMITS")
        self._validate_outbound()
        self._validate_access()
        if self.secret_key is not None or self.secret_keys_old is not None:
            from leadroute.vault import keyring  # only when set: keeps the CLI light

            keyring(self)  # a malformed key fails here, naming the setting
        if self.database_url is not None and not self.database_url.startswith(
            ("postgres://", "postgresql://")
        ):
            raise SettingsError(f"{PREFIX}DATABASE_URL: expected a postgresql:// URL")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"{PREFIX}REDIS_URL: expected a redis://, rediss:// or unix:// URL")

    def _validate_outbound(self) -> None:
        """Webhook delivery and CRM write-back settings."""
        if self.outbound_poll_seconds < 0:
            raise SettingsError(
                f"{PREFIX}OUTBOUND_POLL_SECONDS: must be 0 (off) or a positive number of seconds"
            )
        if self.outbound_concurrency < 1:
            raise SettingsError(f"{PREFIX}OUTBOUND_CONCURRENCY: must be at least 1")
        if self.webhook_timeout <= 0:
            raise SettingsError(f"{PREFIX}WEBHOOK_TIMEOUT: must be a positive number of seconds")
        salesforce = (self.salesforce_client_id, self.salesforce_client_secret, self.salesforce_token_url)
        if any(v is not None for v in salesforce) and not all(v is not None for v in salesforce):
            raise SettingsError(
                f"{PREFIX}SALESFORCE_CLIENT_ID, {PREFIX}SALESFORCE_CLIENT_SECRET and "
                f"{PREFIX}SALESFORCE_TOKEN_URL: set all three to write owners back to Salesforce, or none"
            )
        self._validate_alerts()
        self.webhook_sources()  # a malformed LEADROUTE_INBOUND_WEBHOOK_SECRETS fails the start

    def webhook_sources(self) -> dict[str, str]:
        """:attr:`inbound_webhook_secrets` as ``{source name: secret}``."""
        sources: dict[str, str] = {}
        for item in (self.inbound_webhook_secrets or "").split(","):
            if not item.strip():
                continue
            name, sep, secret = (part.strip() for part in item.partition("="))
            if (
                not sep
                or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name)
                or not secret.startswith("whsec_")
            ):
                raise SettingsError(
                    f"{PREFIX}INBOUND_WEBHOOK_SECRETS: expected name=whsec_... items, comma-separated "
                    "(names: lower-case letters, digits, _ and -)"
                )
            sources[name] = secret
        return sources

    def _validate_alerts(self) -> None:
        """Slack and email alerts; the templates are read and checked when either is on."""
        if (self.smtp_host is None) != (self.smtp_from is None):
            raise SettingsError(
                f"{PREFIX}SMTP_HOST and {PREFIX}SMTP_FROM: set both to alert by email, or none"
            )
        if (self.smtp_user is None) != (self.smtp_password is None):
            raise SettingsError(f"{PREFIX}SMTP_USER and {PREFIX}SMTP_PASSWORD: set both, or none")
        if not 0 < self.smtp_port < 65536:
            raise SettingsError(f"{PREFIX}SMTP_PORT: {self.smtp_port} is not a TCP port (1-65535)")
        if self.alert_queue_emails is not None and self.smtp_host is None:
            raise SettingsError(f"{PREFIX}ALERT_QUEUE_EMAILS: needs {PREFIX}SMTP_HOST (they go by SMTP)")
        for address in self.queue_emails:
            if "@" not in address or any(c in address for c in " <>\r\n"):
                raise SettingsError(f"{PREFIX}ALERT_QUEUE_EMAILS: {address!r} is not an email address")
        if self.alert_queue_threshold is not None and self.alert_queue_threshold < 0:
            raise SettingsError(f"{PREFIX}ALERT_QUEUE_THRESHOLD: must be 0 or more")
        if not self.public_url.startswith(("http://", "https://")):
            raise SettingsError(f"{PREFIX}PUBLIC_URL: expected an http:// or https:// URL")
        if self.slack_webhook_url is not None or self.smtp_host is not None:
            from leadroute.outbound._templates import load_templates

            load_templates(self.alert_templates)

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


# Kubernetes service links (https://kubernetes.io/docs/concepts/services-networking/service/
# #environment-variables), after the prefix: SERVICE_HOST, SERVICE_PORT, SERVICE_PORT_<port name>,
# PORT_<n>_<proto>, PORT_<n>_<proto>_{PROTO,PORT,ADDR}; and PORT itself when its value is a URL.
_LINK_NAME = re.compile(
    r"SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT_[0-9]+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?"
)
_LINK_URL = re.compile(r"(?:tcp|udp|sctp)://\S+")


def _is_service_link(name: str, value: str) -> bool:
    rest = name.removeprefix(PREFIX)
    if rest == "PORT":
        return _LINK_URL.fullmatch(value) is not None
    return _LINK_NAME.fullmatch(rest) is not None


def service_links(environ: Mapping[str, str]) -> list[str]:
    """The ``LEADROUTE_*`` variables that are Kubernetes service links, not settings (sorted)."""
    return sorted(n for n, v in environ.items() if n.startswith(PREFIX) and _is_service_link(n, v))


def _unknown(name: str, key: str, fields: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.75)
    if close:
        return f"{name}: unknown setting; did you mean {PREFIX}{close[0].upper()}?"
    return f"{name}: unknown setting (known: {_known()})"


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
