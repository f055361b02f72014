"""Mapping files: the shipped ones load and pass their tests; a bad file is named by file:line; a
version names one content forever (PostgreSQL); a bad file never replaces the active mapping."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from leadroute.app import create_app
from leadroute.cli import main
from leadroute.config import Settings
from leadroute.inbound import MappingFileError, NoGoodMapping, parse_mapping, start_mappings
from leadroute.inbound._format import TRANSFORMS
from process_support import cli_env, leadroute
from support import authed, connection, fetch

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
version: 1
description: a test form
source: test-form
unmapped: attributes
fields:
  email: [email, work_email]
  employees: {from: size, transform: integer}
attributes:
  campaign: utm.campaign
tests:
  - name: a form
    input: {work_email: a@b.example, size: "51-200", utm: {campaign: spring}, "note-1": hi, _redirect: "1"}
    expect:
      email: a@b.example
      employees: 51
      source: test-form
      attributes: {note_1: hi, campaign: spring}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(MappingFileError) as caught:
        parse_mapping(text, path="mappings/test.yaml")
    return str(caught.value).splitlines()


class TestTheShippedMappings:
    """hubspot, salesforce, webhook and form load, and their tests pass (`leadroute mappings check`)."""

    def test_check_passes(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["mappings", "check", str(ROOT / "mappings")]) == 0
        out = capsys.readouterr().out
        for name, version in (("hubspot", 2), ("salesforce", 2), ("webhook", 1), ("form", 1)):
            assert f"mapping {name!r} version {version}" in out

    def test_test_lists_each_test(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["mappings", "test", str(ROOT / "mappings" / "hubspot.yaml")]) == 0
        out = capsys.readouterr().out
        assert "passed: a contact created in HubSpot" in out
        assert "passed: outcome: a contact becoming a customer" in out


class TestMapping:
    """A mapping reads paths, takes the first present one, transforms it, and keeps the rest."""

    def test_the_example(self) -> None:
        mapping = parse_mapping(GOOD, path="mappings/test.yaml")
        assert mapping.name == "test"
        assert (
            mapping.apply({"email": "x@y.example", "work_email": "other@y.example"})["email"] == "x@y.example"
        )
        assert mapping.apply({"email": "  ", "work_email": "w@y.example"})["email"] == "w@y.example"

    @pytest.mark.parametrize(
        ("given", "expected"),
        [("25-50", 25), ("1000+", 1000), ("1,200", 1200), (" 7 ", 7), (12.0, 12), ("many", "many")],
    )
    def test_integer(self, given: Any, expected: Any) -> None:
        assert TRANSFORMS["integer"](given) == expected

    def test_epoch_ms(self) -> None:
        assert TRANSFORMS["epoch_ms"](1564113600000) == "2019-07-26T04:00:00Z"

    def test_the_sha256_ignores_comments_and_layout(self) -> None:
        a = parse_mapping(GOOD, path="a.yaml", name="x")
        b = parse_mapping(
            "# a comment\n" + GOOD.replace("description: a test form", "description:   a test form"),
            path="b.yaml",
            name="x",
        )
        assert a.sha256 == b.sha256


class TestProblemsHaveFileAndLine:
    """Every problem names the file and the line it is on."""

    def test_an_unknown_lead_field(self) -> None:
        text = GOOD.replace("  employees:", "  emploees:")
        assert problems(text) == [
            "mappings/test.yaml:7: fields: 'emploees' is not a lead field (did you mean 'employees'?)"
        ]

    def test_a_misspelled_section(self) -> None:
        [line] = problems(GOOD.replace("attributes:\n  campaign", "atributes:\n  campaign"))
        assert line == "mappings/test.yaml:8: unknown key 'atributes' (did you mean 'attributes'?)"

    def test_an_unknown_transform(self) -> None:
        [line] = problems(GOOD.replace("transform: integer", "transform: int"))
        assert line == "mappings/test.yaml:7: fields.employees: Invalid enum value 'int'"

    def test_a_yaml_syntax_error(self) -> None:
        [line] = problems(GOOD.replace("source: test-form", "source: [test-form"))
        assert line.startswith("mappings/test.yaml:")
        assert "YAML syntax error" in line

    def test_a_failing_test(self) -> None:
        [line] = problems(GOOD.replace("employees: 51", "employees: 50"))
        assert line == "mappings/test.yaml:11: test 'a form': employees: expected 50, got 51"

    def test_a_test_whose_lead_intake_refuses(self) -> None:
        text = GOOD.replace("email: a@b.example\n      employees", "employees").replace(
            "work_email: a@b.example, ", ""
        )
        [line] = problems(text)
        assert line.startswith(
            "mappings/test.yaml:11: test 'a form': the lead it makes is refused at intake (email:"
        )

    def test_the_cli_exits_1_with_the_problems(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "form.yaml").write_text(GOOD.replace("  employees:", "  emploees:"))
        assert main(["mappings", "check", str(tmp_path)]) == 1
        assert f"{tmp_path}/form.yaml:7: fields: 'emploees'" in capsys.readouterr().err


class TestVersions:
    """A version names one content forever; a bad or changed file keeps the active version."""

    async def test_store_keep_and_refuse(self, settings: Settings, clean: None, tmp_path: Path) -> None:
        file = tmp_path / "form.yaml"
        file.write_text(GOOD)
        async with connection(settings) as conn:
            first = await start_mappings(conn, tmp_path, actor="test")
            assert first.mappings["form"].version == 1
            assert first.problems == {}
            again = await start_mappings(conn, tmp_path, actor="test")  # same file: nothing new
            assert again.problems == {}
            # changed under the same version: refused, version 1 as stored keeps running
            file.write_text(GOOD.replace("source: test-form", "source: changed"))
            changed = await start_mappings(conn, tmp_path, actor="test")
            assert (
                "version 1 of mapping 'form' is already stored with different content"
                in changed.problems["form"]
            )
            assert "bump 'version:' to 2" in changed.problems["form"]
            assert changed.mappings["form"].file.source == "test-form"
            # a file that does not load: the active version keeps running
            file.write_text(GOOD.replace("  employees:", "  emploees:").replace("version: 1", "version: 2"))
            broken = await start_mappings(conn, tmp_path, actor="test")
            assert broken.problems["form"].startswith(f"{file}:7:")
            assert broken.mappings["form"].version == 1
            # the bumped version is stored and runs; going back to version 1 re-activates it
            file.write_text(
                GOOD.replace("source: test-form", "source: changed").replace("version: 1", "version: 2")
            )
            assert (await start_mappings(conn, tmp_path, actor="test")).mappings[
                "form"
            ].file.source == "changed"
            file.write_text(GOOD)
            assert (await start_mappings(conn, tmp_path, actor="test")).mappings["form"].version == 1
        rows = await fetch(
            settings, "SELECT name, version, created_by FROM inbound_mappings ORDER BY version"
        )
        assert [(r["name"], r["version"], r["created_by"]) for r in rows] == [
            ("form", 1, "test"),
            ("form", 2, "test"),
        ]

    async def test_the_cli_check_finds_a_changed_file_under_a_stored_version(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        file = tmp_path / "form.yaml"
        file.write_text(GOOD)
        async with connection(settings) as conn:
            await start_mappings(conn, tmp_path, actor="test")
        env = cli_env(settings)
        same = leadroute("mappings", "check", str(tmp_path), env=env)
        assert same.returncode == 0, same.stderr
        assert "0 conflict(s)" in same.stdout
        file.write_text(GOOD.replace("source: test-form", "source: changed"))
        changed = leadroute("mappings", "check", str(tmp_path), env=env)
        assert changed.returncode == 1
        assert "version 1 of mapping 'form' is already stored with different content" in changed.stderr
        assert "bump 'version:' to 2" in changed.stderr

    async def test_a_stored_version_cannot_be_changed(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        (tmp_path / "form.yaml").write_text(GOOD)
        async with connection(settings) as conn:
            await start_mappings(conn, tmp_path, actor="test")
            with pytest.raises(Exception, match="cannot change"):
                await conn.execute("UPDATE inbound_mappings SET source = 'x'")

    async def test_a_bad_file_with_nothing_stored_stops_the_start(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        (tmp_path / "form.yaml").write_text(GOOD.replace("version: 1", "version: 0"))
        async with connection(settings) as conn:
            with pytest.raises(NoGoodMapping, match="no version of mapping 'form' was ever stored"):
                await start_mappings(conn, tmp_path, actor="test")

    async def test_a_bad_file_keeps_the_active_mapping_over_http(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        shutil.copy(ROOT / "mappings" / "form.yaml", tmp_path / "form.yaml")
        configured = msgspec.structs.replace(settings, mappings_path=tmp_path)
        async with authed(create_app(configured)) as client:  # stores form v1
            key = (await client.post("/v1/keys", json={"name": "f", "scopes": ["leads:write"]})).json()["key"]
        (tmp_path / "form.yaml").write_text("version: 2\nfields:\n  emial: email\n")
        async with authed(create_app(configured)) as client:
            r = await client.post(
                f"/v1/inbound/form/form?key={key}",
                data={"email": "kept@umbrella.example", "message": "hi"},
                headers={"authorization": ""},
            )
            assert r.status_code == 201, r.text
            ready = (await client.get("/health/ready")).json()
            assert ready["mapping_file_problems"] == 1
            assert ready["mapping_problems"]["form"].startswith(f"{tmp_path}/form.yaml:3: fields: 'emial'")
        [row] = await fetch(settings, "SELECT normalized FROM leads")
        assert row["normalized"]["source"] == "web-form"  # version 1 mapped it
        assert row["normalized"]["attributes"] == {"message": "hi"}


# -- outcomes: ---------------------------------------------------------------------------------

CRM = """\
version: 1
source: crm
fields:
  email: Email
outcomes:
  lead:
    attributes: {crm_id: [Id, ContactId]}
    email: Email
  rules:
    - when: {type: Deal, Won: "true"}
      outcome: won
      amount: {from: Amount, transform: number}
      at: {from: [Modified, CloseDate], transform: datetime}
    - when: {type: Deal, Stage: [Lost, No Decision]}
      outcome: lost
      reason: LossReason
    - when: {type: Deal}
      outcome: ignore
  tests:
    - name: a won deal
      input: {type: Deal, Won: true, Amount: "1,500.50", CloseDate: "2026-11-30"}
      expect: {outcome: won, amount: 1500.5, at: "2026-11-30T00:00:00Z"}
"""


class TestOutcomeRules:
    """The first rule whose `when` values all match decides; values compare as text without case."""

    def mapping(self) -> Any:
        mapping = parse_mapping(CRM, path="mappings/crm.yaml")
        assert mapping.outcomes is not None
        return mapping.outcomes

    def test_the_first_matching_rule_makes_the_outcome_body(self) -> None:
        outcomes = self.mapping()
        won = outcomes.match(
            {"type": "deal", "Won": "TRUE", "Amount": 10, "Modified": "2026-11-23T15:00:00.000+0000"}
        )
        assert (won.rule, won.body) == (0, {"outcome": "won", "amount": 10, "at": "2026-11-23T15:00:00Z"})
        lost = outcomes.match({"type": "Deal", "Won": False, "Stage": "No Decision", "LossReason": "price"})
        assert lost.body == {"outcome": "lost", "reason": "price"}

    def test_ignore_and_no_match(self) -> None:
        outcomes = self.mapping()
        ignored = outcomes.match({"type": "Deal", "Stage": "Open"})
        assert (ignored.rule, ignored.body) == (2, None)
        assert outcomes.match({"type": "Lead", "Email": "a@b.example"}) is None
        assert outcomes.match({"Won": "true"}) is None  # a missing value never matches

    def test_the_lead_is_looked_up_by_attributes_then_email(self) -> None:
        keys = self.mapping().lead_keys({"Id": "D1", "ContactId": "C1", "Email": " A@B.example "})
        assert [(k.kind, k.attribute, k.value) for k in keys] == [
            ("attribute", "crm_id", "D1"),
            ("attribute", "crm_id", "C1"),
            ("email", "", "a@b.example"),
        ]

    def test_the_datetime_transform(self) -> None:
        to = TRANSFORMS["datetime"]
        assert to("2026-11-30") == "2026-11-30T00:00:00Z"
        assert to("2026-11-23T15:00:00.000+0000") == "2026-11-23T15:00:00Z"
        assert to("2026-11-23T17:00:00+02:00") == "2026-11-23T15:00:00Z"
        assert to("soon") == "soon"  # left for the outcome check to refuse


class TestOutcomeProblems:
    """A bad outcomes: section is named by file and line, its tests included."""

    def test_a_failing_outcome_test(self) -> None:
        [line] = problems(CRM.replace("amount: 1500.5", "amount: 1500"))
        assert line == "mappings/test.yaml:20: outcome test 'a won deal': amount: expected 1500, got 1500.5"

    def test_an_outcome_test_expecting_nothing(self) -> None:
        [line] = problems(CRM.replace("Won: true, Amount", "Won: false, Amount"))
        assert line.startswith("mappings/test.yaml:20: outcome test 'a won deal': expected {")
        assert line.endswith(", got null")

    def test_an_outcome_the_outcome_route_refuses(self) -> None:
        text = CRM.replace('CloseDate: "2026-11-30"', 'CloseDate: "someday"').replace(
            'at: "2026-11-30T00:00:00Z"', "at: someday"
        )
        [line] = problems(text)
        assert line.startswith(
            "mappings/test.yaml:20: outcome test 'a won deal': the outcome it makes is refused (at:"
        )

    def test_an_unknown_outcome(self) -> None:
        [line] = problems(CRM.replace("outcome: lost", "outcome: gone"))
        assert line == "mappings/test.yaml:15: outcomes.rules.1.outcome: Invalid enum value 'gone'"

    def test_a_lead_lookup_that_names_nothing(self) -> None:
        text = CRM.replace(
            "    attributes: {crm_id: [Id, ContactId]}\n    email: Email\n", "    attributes: {}\n"
        )
        [line] = problems(text)
        assert line == "mappings/test.yaml:7: outcomes.lead: name at least one attribute or an email path"

    def test_a_bad_attribute_name(self) -> None:
        [line] = problems(CRM.replace("{crm_id:", "{crm-id:"))
        assert line == "mappings/test.yaml:7: outcomes.lead.attributes: 'crm-id' is not an attribute name"

    def test_a_when_value_that_is_not_text(self) -> None:
        [line] = problems(CRM.replace('Won: "true"}', "Won: {yes: 1}}"))
        assert line == "mappings/test.yaml:10: outcomes.rules.0.when: Expected `str | array`, got `object`"
