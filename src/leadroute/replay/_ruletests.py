"""``leadroute rules test``: run the tests written in rule files and show each failure as a diff.

Pass or fail comes from the rule-file test runner (:func:`leadroute.rules.run_ruleset_tests`, the
same one ``rules check``, upload validation and activation use). For a failed test this module
evaluates its lead once more to lay expected and actual side by side: stage, pool (or
``queue:<fallback>`` when no pool rule matches, as replay shows it), score, and
the routing targets, the expected rule ids that did not match (missing) next to those that
matched without being listed (unexpected: for information, they do not fail a test), and each
rule's points (activity rules with their activity and decay).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from leadroute.models import LeadIn, NormalizedLead, RuleHit
from leadroute.rules import Ruleset, RulesetError, RuleTest, TestOutcome, load_ruleset, run_ruleset_tests
from leadroute.rules._filetests import lead_from_test, pool_hint, rule_test_inputs
from leadroute.scoring import Evaluation, destination, evaluate

__all__ = ["FileResult", "format_file_result", "format_summary", "rule_files", "run_file"]

Normalizer = Callable[[LeadIn], NormalizedLead]


class FileResult(msgspec.Struct, frozen=True, kw_only=True):
    """One rule file's tests, or the problems that kept it from loading."""

    path: str
    version: int | None = None
    sha256: str | None = None
    lines: list[str]
    """The file's report, ready to print."""
    passed: int = 0
    failed: int = 0
    load_error: bool = False

    @property
    def ok(self) -> bool:
        """It loaded and every test passed."""
        return not self.load_error and self.failed == 0


def rule_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.yaml``/``*.yml`` file in it when it is a directory."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _default_normalizer() -> Normalizer:
    from leadroute.intake import normalize

    return normalize


def run_file(path: Path, *, normalize: Normalizer | None = None) -> FileResult:
    """Load one rule file and run its tests."""
    try:
        ruleset = load_ruleset(path)
    except RulesetError as exc:
        lines = [f"{path}: does not load ({len(exc.problems)} problem(s))"]
        lines += [f"  {problem}" for problem in exc.problems]
        return FileResult(path=str(path), lines=lines, load_error=True)
    normalizer = normalize or _default_normalizer()
    outcomes = run_ruleset_tests(ruleset, normalize=normalizer)
    lines = [f"{ruleset.display_path}: version {ruleset.version}, sha256 {ruleset.sha256[:12]}"]
    if not outcomes:
        lines.append("  no tests: add some under tests: (see docs/rules.md)")
    for test, outcome in zip(ruleset.tests, outcomes, strict=True):
        if outcome.passed:
            lines.append(f"  ok    {outcome.name}")
        else:
            lines.append(f"  FAIL  {outcome.name}  (line {test.line})")
            lines += [f"        {line}" for line in _diff(ruleset, test, outcome, normalizer)]
    failed = sum(not o.passed for o in outcomes)
    return FileResult(
        path=str(path),
        version=ruleset.version,
        sha256=ruleset.sha256,
        lines=lines,
        passed=len(outcomes) - failed,
        failed=failed,
    )


def _diff(ruleset: Ruleset, test: RuleTest, outcome: TestOutcome, normalize: Normalizer) -> list[str]:
    try:
        lead = lead_from_test(test.spec.lead)
        normalized = normalize(lead)
    except ValueError:
        return outcome.diffs  # the lead itself is invalid: the runner's message says which field
    activities, now = rule_test_inputs(test.spec, lead)  # the runner's own activities and "now"
    return expected_vs_actual(test, evaluate(ruleset, normalized, activities=activities, now=now))


def expected_vs_actual(test: RuleTest, actual: Evaluation) -> list[str]:
    """Lines comparing a test's expectations with an evaluation, ``!`` marking each mismatch."""
    expect = test.spec.expect
    rows: list[tuple[str, str, str, bool]] = []
    if expect.stage is not None:
        rows.append(("stage", expect.stage, actual.stage, expect.stage != actual.stage))
    if expect.pool is not None:
        where = destination(actual)  # the pool, or queue:<fallback> when no pool rule matched
        rows.append(("pool", expect.pool, where + pool_hint(expect.pool, actual), expect.pool != where))
    if expect.score is not None:
        delta = actual.score - expect.score
        shown = f"{actual.score:g} ({delta:+g})" if delta else f"{actual.score:g}"
        rows.append(("score", f"{expect.score:g}", shown, abs(delta) > 1e-9))
    if expect.targets is not None:
        got = ", ".join(t.rule for t in actual.targets) or "none"
        want = ", ".join(expect.targets) or "none"
        rows.append(("targets", want, got, list(expect.targets) != [t.rule for t in actual.targets]))
    width = max([len(r[1]) for r in rows] + [len("expected")])
    lines = [f"  {'':<8}{'expected':<{width}}  actual"] if rows else []
    lines += [f"{'!' if bad else ' '} {name:<8}{exp:<{width}}  {act}" for name, exp, act, bad in rows]
    hit = list(dict.fromkeys(h.rule for h in actual.hits))  # activity rules hit once per activity
    if expect.matched is not None:
        missing = [r for r in expect.matched if r not in hit]
        unexpected = [r for r in hit if r not in expect.matched]
        lines.append(f"{'!' if missing else ' '} matched: missing {', '.join(missing) or 'none'}")
        lines.append(f"  matched: unexpected (not a failure) {', '.join(unexpected) or 'none'}")
    points = ", ".join(_hit(h) for h in actual.hits) or "no scoring rule matched"
    lines.append(f"  points: {points}")
    lines.append(f"  decided by: {_decided_by(actual)}")
    lines += [f"  rule error: {e.rule}: {e.message}" for e in actual.rule_errors]
    return lines


def _decided_by(actual: Evaluation) -> str:
    """Which entries gave the stage and the route; says so when none did (no None in the output)."""
    qualification = (
        f"qualification {actual.qualification_rule!r}"
        if actual.qualification_rule is not None
        else f"no qualification entry matched (stage {actual.stage})"
    )
    routing = (
        f"routing {actual.routing_rule!r}"
        if actual.routing_rule is not None
        else f"no pool rule matched (queue {actual.fallback!r})"
    )
    return f"{qualification}, {routing}"


def _hit(hit: RuleHit) -> str:
    if hit.activity is None:
        return f"{hit.rule} {hit.points:+g}"
    decay = f", decay {hit.decay:.3g}" if hit.decay is not None and hit.decay != 1 else ""
    return f"{hit.rule} {hit.points:+.3g} ({hit.activity}{decay})"


def format_file_result(result: FileResult) -> str:
    """One file's report."""
    return "\n".join(result.lines)


def format_summary(results: list[FileResult]) -> str:
    """The closing line: files, tests passed and failed, files that did not load."""
    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    broken = sum(r.load_error for r in results)
    verdict = "FAILED" if failed or broken or not results else "passed"
    text = f"{verdict}: {len(results)} file(s), {passed} test(s) passed, {failed} failed"
    if broken:
        text += f", {broken} file(s) did not load"
    if not results:
        text += " (no rule files found)"
    return text
