"""``leadroute rules test`` and ``leadroute rules replay``: the command-line side of dry runs.

``cli.py`` declares the arguments (so ``--help`` stays fast) and calls these with the settings
and the parsed arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from leadroute.config import Settings
from leadroute.replay._progress import ProgressBar
from leadroute.replay._report import ReplayReport, report_json
from leadroute.replay._ruletests import format_file_result, format_summary, rule_files, run_file
from leadroute.replay._run import Side, parse_since, replay_stored
from leadroute.replay._source import active_side
from leadroute.replay._text import format_report
from leadroute.rules import RulesetError, load_rules_path, run_ruleset_tests
from leadroute.rules.evaluator import Evaluator, evaluator_for
from leadroute.store.rulesets import load_stored_ruleset

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from leadroute.store.db import Connection

__all__ = ["rules_replay", "rules_test"]


def rules_test(settings: Settings, args: argparse.Namespace) -> int:
    """Run the tests of every rule file at PATH; 0 when all load and pass, 1 otherwise."""
    path: Path = args.path or settings.rules_path
    results = [run_file(file) for file in rule_files(path)] if path.exists() else []
    for result in results:
        print(format_file_result(result))
    if not path.exists():
        print(f"{path}: no such file or directory", file=sys.stderr)
    print(format_summary(results))
    return 0 if results and all(r.ok for r in results) else 1


def rules_replay(
    settings: Settings,
    args: argparse.Namespace,
    *,
    servers: Callable[[Settings], AbstractContextManager[Settings]],
) -> int:
    """Replay stored leads under the baseline and the candidate; print the report, maybe write JSON."""
    as_of = datetime.now(UTC)
    try:
        since = _check_options(args, as_of)
    except ValueError as exc:
        print(f"leadroute: {exc}", file=sys.stderr)
        return 2
    evaluator = evaluator_for(settings.rules_evaluator)
    try:  # files first: a typo in the candidate is reported before any server starts
        candidate = _file_side(args.candidate, evaluator) if args.candidate else None
        baseline = _file_side(args.baseline, evaluator) if args.baseline else None
    except RulesetError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    if candidate is not None:
        _warn_failing_tests(candidate)
    with servers(settings) as live:
        report = asyncio.run(
            _replay(
                live,
                args,
                evaluator=evaluator,
                baseline=baseline,
                candidate=candidate,
                as_of=as_of,
                since=since,
            )
        )
    if report is None:
        return 1
    print(format_report(report))
    if args.output is not None:
        try:
            args.output.write_bytes(report_json(report))
        except OSError as exc:
            print(f"leadroute: could not write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"\nwrote {args.output}")
    return 0


def _check_options(args: argparse.Namespace, as_of: datetime) -> datetime | None:
    """``--since`` as a time; raises ValueError naming a bad option (before anything starts)."""
    since = parse_since(args.since, now=as_of) if args.since else None
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.output is not None and not args.output.parent.is_dir():  # before a long replay, not after
        raise ValueError(f"--output {args.output}: no such directory {args.output.parent}")
    return since


def _file_side(path: Path, evaluator: Evaluator) -> Side:
    ruleset = load_rules_path(path, evaluator=evaluator)
    return Side(ruleset, ruleset.display_path)


def _warn_failing_tests(side: Side) -> None:
    failed = [o.name for o in run_ruleset_tests(side.ruleset) if not o.passed]
    if failed:
        print(
            f"warning: {len(failed)} test(s) of the candidate fail (leadroute rules test shows why): "
            + "; ".join(failed),
            file=sys.stderr,
        )


async def _replay(
    settings: Settings,
    args: argparse.Namespace,
    *,
    evaluator: Evaluator,
    baseline: Side | None,
    candidate: Side | None,
    as_of: datetime,
    since: datetime | None,
) -> ReplayReport | None:
    from leadroute.store.db import connect

    assert settings.database_url is not None  # servers() set it
    conn = await connect(settings.database_url)
    try:
        try:
            baseline = baseline or await _baseline(conn, settings, args.baseline_version, evaluator)
            candidate = candidate or await _stored_side(conn, args.candidate_version, evaluator)
        except LookupError as exc:
            print(f"leadroute: {exc}", file=sys.stderr)
            return None
        except RulesetError as exc:
            print(f"{exc}", file=sys.stderr)
            return None
        bar = ProgressBar(sys.stderr)
        try:
            return await replay_stored(
                conn,
                baseline=baseline,
                candidate=candidate,
                as_of=as_of,
                since=since,
                limit=args.limit,
                examples=args.examples,
                progress=bar,
            )
        finally:
            bar.close()
    finally:
        await conn.close()


async def _baseline(conn: Connection, settings: Settings, version: int | None, evaluator: Evaluator) -> Side:
    """A stored version if asked; else what the fleet runs; else, before any activation, the rules file."""
    if version is not None:
        return await _stored_side(conn, version, evaluator)
    active = await active_side(conn)
    if active is not None:
        return Side(*active)
    return _file_side(settings.rules_path, evaluator)


async def _stored_side(conn: Connection, version: int, evaluator: Evaluator) -> Side:
    loaded = await load_stored_ruleset(conn, version, evaluator=evaluator)
    if loaded is None:
        raise LookupError(f"no stored ruleset has version {version} (leadroute rules list shows them)")
    return Side(loaded[0], f"stored version {version}")
