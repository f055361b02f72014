"""Tests written inside rule files: run through normalization and scoring, reported as diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadroute.models import LeadIn, NormalizedLead
from leadroute.rules import RulesetError, TestOutcome, check_rules, load_ruleset, run_ruleset_tests
from leadroute.rules._filetests import lead_from_test

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "rules" / "inbound.yaml"

RULES = """\
version: 2
fields:
  attributes.form: STRING
scoring:
  groups:
    fit: {max: 60}
    engagement: {max: 40}
  rules:
    - {id: senior-title, group: fit, when: 'title =~~ "(?i)(vp|director)"', points: 25}
    - {id: big-company, group: fit, when: '(employees ?? 0) >= 1000', points: 20}
    - {id: demo, group: engagement, when: 'attributes.form == "demo"', points: 30}
qualification:
  - {stage: sql, when: 'score >= 70'}
  - {stage: mql, when: 'score >= 40'}
  - {stage: lead}
routing:
  rules:
    - {id: enterprise-na, when: 'stage in ["sql", "mql"] and (employees ?? 0) >= 1000', pool: enterprise-na}
    - {id: everyone-else, when: 'true', pool: inbound}
  fallback: unassigned
tests:
  - name: VP at an enterprise asking for a demo
    lead: {email: jane@acme.example, title: VP Sales, employees: 5000, form: demo}
    expect: {stage: sql, pool: enterprise-na, score: 75, matched: [senior-title, demo]}
"""

WRONG = """\
  - name: wrong on every count
    lead: {email: bob@acme.example, title: Analyst, employees: 10}
    expect: {stage: sql, pool: enterprise-na, score: 75.5, matched: [senior-title, demo]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class TestDefaultRuleset:
    """The shipped ``rules/inbound.yaml`` passes its own tests."""

    def test_default_file_tests_pass(self) -> None:
        report = check_rules(DEFAULT_RULES)
        assert len(report.outcomes) >= 6
        assert [o for o in report.outcomes if not o.passed] == []
        assert report.passed

    def test_default_directory_is_accepted(self) -> None:
        assert check_rules(DEFAULT_RULES.parent).passed


class TestOutcomes:
    """Each test passes, or fails with one readable line per unmet expectation."""

    def test_passing_test(self, tmp_path: Path) -> None:
        outcomes = run_ruleset_tests(load_ruleset(write(tmp_path, RULES)))
        assert outcomes == [TestOutcome("VP at an enterprise asking for a demo", True, [])]

    def test_failing_expectations_give_diffs(self, tmp_path: Path) -> None:
        outcomes = run_ruleset_tests(load_ruleset(write(tmp_path, RULES + WRONG)))
        failed = outcomes[1]
        assert not failed.passed
        assert failed.diffs == [
            "stage: expected sql, got lead",
            "pool: expected enterprise-na, got inbound",
            "score: expected 75.5, got 0",
            "matched: expected senior-title, demo to match; matched: none",
        ]

    def test_no_routing_rules_send_every_lead_to_the_fallback_queue(self, tmp_path: Path) -> None:
        # An empty rules list with a fallback is legitimate: the pool compared is queue:<fallback>.
        text = RULES.split("routing:", maxsplit=1)[0] + (
            "routing: {rules: [], fallback: unassigned}\n"
            "tests:\n"
            "  - name: queued\n"
            "    lead: {email: jane@acme.example}\n"
            "    expect: {pool: 'queue:unassigned', targets: []}\n"
            "  - name: expects the queue's bare name\n"
            "    lead: {email: jane@acme.example}\n"
            "    expect: {pool: unassigned}\n"
        )
        ruleset = load_ruleset(write(tmp_path, text))
        assert ruleset.routing_rules == ()
        queued, bare = run_ruleset_tests(ruleset)
        assert queued == TestOutcome("queued", True, [])
        assert bare.diffs == [
            "pool: expected unassigned, got queue:unassigned (no pool rule matched, so the lead waits "
            "in the fallback queue; to expect that, write pool: 'queue:unassigned')"
        ]

    def test_score_tolerance(self, tmp_path: Path) -> None:
        text = RULES.replace("score: 75,", "score: 75.0000000001,")
        assert run_ruleset_tests(load_ruleset(write(tmp_path, text)))[0].passed

    def test_invalid_lead_is_a_failed_test(self, tmp_path: Path) -> None:
        text = RULES + "  - name: unreachable\n    lead: {title: VP}\n    expect: {stage: lead}\n"
        outcome = run_ruleset_tests(load_ruleset(write(tmp_path, text)))[1]
        assert not outcome.passed
        assert (
            outcome.diffs[0]
            == "lead is invalid: email: a lead needs an email or a phone (fix the test's lead)"
        )

    def test_lead_of_the_wrong_shape_is_a_failed_test(self, tmp_path: Path) -> None:
        text = (
            RULES
            + "  - name: bad\n    lead: {email: a@b.example, employees: [1]}\n    expect: {stage: lead}\n"
        )
        outcome = run_ruleset_tests(load_ruleset(write(tmp_path, text)))[1]
        assert not outcome.passed
        assert "employees" in outcome.diffs[0]

    def test_normalizer_can_be_injected(self, tmp_path: Path) -> None:
        seen: list[LeadIn] = []

        def normalize(lead: LeadIn) -> NormalizedLead:
            seen.append(lead)
            return NormalizedLead(title=lead.title, employees=lead.employees, attributes=lead.attributes)

        outcomes = run_ruleset_tests(load_ruleset(write(tmp_path, RULES)), normalize=normalize)
        assert outcomes[0].passed
        assert seen[0].attributes == {"form": "demo"}


class TestLeadFromTest:
    """Keys the lead contract does not name become attributes, as for posted leads."""

    def test_unknown_keys_go_to_attributes(self) -> None:
        lead = lead_from_test({"email": "a@b.example", "form": "demo", "attributes": {"x": 1}})
        assert lead.email == "a@b.example"
        assert lead.attributes == {"x": 1, "form": "demo"}

    def test_a_lead_needs_an_email_or_phone(self) -> None:
        with pytest.raises(ValueError, match="email"):
            lead_from_test({"title": "VP"})


class TestCheckReport:
    """``check_rules`` loads the file, runs its tests and formats a report."""

    def test_format_lists_identity_counts_and_failures(self, tmp_path: Path) -> None:
        path = write(tmp_path, RULES + WRONG)
        report = check_rules(path)
        assert not report.passed
        text = report.format()
        lines = text.splitlines()
        assert lines[0] == f"{path}: version 2, sha256 {report.sha256}"
        assert "3 scoring rules" in text
        assert "tests: 1 passed, 1 failed" in text
        assert "  FAILED wrong on every count" in lines
        assert "    stage: expected sql, got lead" in lines

    def test_load_errors_propagate(self, tmp_path: Path) -> None:
        with pytest.raises(RulesetError):
            check_rules(write(tmp_path, RULES.replace("points: 25", "points: x")))
