"""``leadroute rules test``: the tests inside rule files, a diff per failure, a non-zero exit on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadroute.cli import main

ROOT = Path(__file__).resolve().parent.parent

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
  - {id: sql, stage: sql, when: 'score >= 70'}
  - {id: mql, stage: mql, when: 'score >= 40'}
  - {id: lead, stage: lead}
routing:
  rules:
    - {id: enterprise, when: 'stage in ["sql", "mql"] and (employees ?? 0) >= 1000', pool: enterprise-na}
    - {id: everyone-else, when: 'true', pool: inbound}
  fallback: unassigned
tests:
  - name: VP at an enterprise asking for a demo
    lead: {email: jane@acme.example, title: VP Sales, employees: 5000, form: demo}
    expect: {stage: sql, pool: enterprise-na, score: 75, matched: [senior-title, demo]}
"""

WRONG = """\
  - name: wrong on every count
    lead: {email: bob@acme.example, title: Director, employees: 10}
    expect: {stage: sql, pool: enterprise-na, score: 75.5, matched: [big-company, demo]}
"""


def write(directory: Path, text: str, name: str = "rules.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["rules", "test", *args])
    out, err = capsys.readouterr()
    return code, out, err


class TestPassing:
    """Every test passing exits 0 and says so."""

    def test_shipped_rules_pass(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(capsys, str(ROOT / "rules"))
        assert code == 0, out
        assert "  ok    VP at a US enterprise asking for a demo is SQL and goes to enterprise-na" in out
        assert out.splitlines()[-1].startswith("passed: 1 file(s), ")
        assert "0 failed" in out

    def test_default_path_is_the_rules_setting(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write(tmp_path, RULES)
        monkeypatch.setenv("LEADROUTE_RULES_PATH", str(tmp_path))
        code, out, _ = run(capsys)
        assert code == 0, out
        assert out.splitlines()[-1] == "passed: 1 file(s), 1 test(s) passed, 0 failed"


class TestFailing:
    """A failed test exits 1 and shows expected against actual, field by field."""

    def test_diff_of_each_expectation(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        path = write(tmp_path, RULES + WRONG)
        code, out, _ = run(capsys, str(path))
        assert code == 1
        lines = out.splitlines()
        start = lines.index("  FAIL  wrong on every count  (line 25)")
        block = lines[start + 1 :]
        assert block[0].split() == ["expected", "actual"]
        assert block[1].split() == ["!", "stage", "sql", "lead"]
        assert block[2].split() == ["!", "pool", "enterprise-na", "inbound"]
        assert block[3].split() == ["!", "score", "75.5", "25", "(-50.5)"]
        assert block[4].strip() == "! matched: missing big-company, demo"
        assert block[5].strip() == "matched: unexpected (not a failure) senior-title"
        assert block[6].strip() == "points: senior-title +25"
        assert block[7].strip() == "decided by: qualification 'lead', routing 'everyone-else'"
        assert "  ok    VP at an enterprise asking for a demo" in lines
        assert lines[-1] == "FAILED: 1 file(s), 1 test(s) passed, 1 failed"

    def test_matching_fields_are_not_marked(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        wrong_score_only = (
            "  - name: only the score is off\n"
            "    lead: {email: jane@acme.example, title: VP Sales, employees: 5000, form: demo}\n"
            "    expect: {stage: sql, score: 80}\n"
        )
        code, out, _ = run(capsys, str(write(tmp_path, RULES + wrong_score_only)))
        assert code == 1
        stage_line = next(line for line in out.splitlines() if line.strip().startswith("stage"))
        assert not stage_line.strip().startswith("!")
        score_line = next(line for line in out.splitlines() if "score" in line and "80" in line)
        assert score_line.strip().startswith("!")
        assert "75 (-5)" in score_line

    def test_invalid_test_lead_names_the_field(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        bad = "  - name: no way to reach them\n    lead: {title: VP}\n    expect: {stage: lead}\n"
        code, out, _ = run(capsys, str(write(tmp_path, RULES + bad)))
        assert code == 1
        assert "lead is invalid:" in out
        assert "email" in out


ACTIVITY_TEST = """\
version: 3
fields:
  activity.url: STRING
scoring:
  groups:
    engagement: {max: 40, half_life_days: 14}
  rules:
    - {id: pricing-page, group: engagement, on_activity: page_view, when: 'url =~~ "/pricing"', points: 10}
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: inbound}
  fallback: unassigned
tests:
  - name: a pricing view two weeks old is worth half
    lead: {email: li@maple.example}
    activities:
      - {type: page_view, age_days: 14, properties: {url: /pricing}}
    expect: {score: 10}
"""


class TestNoPoolRule:
    """A lead no pool rule takes is shown in its queue (queue:<fallback>), never as pool None."""

    def test_empty_routing_rules_show_the_queue(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        text = RULES.split("routing:", maxsplit=1)[0] + (
            "routing: {rules: [], fallback: unassigned}\n"
            "tests:\n"
            "  - name: queued\n"
            "    lead: {email: jane@acme.example, title: VP Sales}\n"
            "    expect: {pool: 'queue:unassigned', stage: lead}\n"
            "  - name: wrong pool\n"
            "    lead: {email: jane@acme.example, title: VP Sales}\n"
            "    expect: {pool: inbound, score: 0}\n"
        )
        code, out, _ = run(capsys, str(write(tmp_path, text)))
        assert code == 1
        assert "None" not in out
        lines = out.splitlines()
        assert "  ok    queued" in lines
        start = next(i for i, line in enumerate(lines) if line.startswith("  FAIL  wrong pool  (line "))
        block = lines[start + 1 :]
        assert block[1].split() == ["!", "pool", "inbound", "queue:unassigned"]
        assert block[-2].strip() == (
            "decided by: qualification 'lead', no pool rule matched (queue 'unassigned')"
        )


class TestActivities:
    """Test activities are evaluated as the runner evaluates them; hits show activity and decay."""

    def test_activity_hit_with_decay(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        code, out, _ = run(capsys, str(write(tmp_path, ACTIVITY_TEST)))
        assert code == 1
        assert "! score   10        5 (-5)" in out
        assert "points: pricing-page +5 (page_view, decay 0.5)" in out


class TestLoadErrors:
    """A file that does not load is reported as file:line:column, rule id and message."""

    def test_load_error_location(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        path = write(tmp_path, RULES.replace("points: 20", "points: twenty"))
        code, out, _ = run(capsys, str(path))
        assert code == 1
        assert f"{path}: does not load (1 problem(s))" in out
        assert f"  {path}:10:" in out
        assert "rule 'big-company':" in out
        assert out.splitlines()[-1] == "FAILED: 1 file(s), 0 test(s) passed, 0 failed, 1 file(s) did not load"

    def test_directory_without_rule_files(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        code, out, _ = run(capsys, str(tmp_path))
        assert code == 1
        assert out.splitlines()[-1] == "FAILED: 0 file(s), 0 test(s) passed, 0 failed (no rule files found)"

    def test_missing_path(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        code, out, err = run(capsys, str(tmp_path / "nope.yaml"))
        assert code == 1
        assert "no such file or directory" in err
        assert "no rule files found" in out


class TestDirectories:
    """A directory runs every rule file in it (candidates beside the active file)."""

    def test_each_file_is_reported_and_any_failure_fails(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        write(tmp_path, RULES, "a.yaml")
        write(tmp_path, RULES + WRONG, "b.yml")
        (tmp_path / "notes.txt").write_text("not a rule file", encoding="utf-8")
        code, out, _ = run(capsys, str(tmp_path))
        assert code == 1
        assert f"{tmp_path / 'a.yaml'}: version 2" in out
        assert f"{tmp_path / 'b.yml'}: version 2" in out
        assert out.splitlines()[-1] == "FAILED: 2 file(s), 2 test(s) passed, 1 failed"


class TestGuideExample:
    """The example rule file and test in docs/rules.md load and pass, so the guide cannot rot."""

    def test_guide_example_passes(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        guide = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
        start = guide.index("```yaml\nversion:") + len("```yaml\n")
        rules = guide[start : guide.index("```", start)]
        start = guide.index("```yaml\ntests:") + len("```yaml\ntests:\n")
        extra_test = guide[start : guide.index("```", start)]
        code, out, _ = run(capsys, str(write(tmp_path, rules + extra_test)))
        assert code == 0, out
        assert out.splitlines()[-1] == "passed: 1 file(s), 2 test(s) passed, 0 failed"
