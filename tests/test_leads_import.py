"""``leadroute leads import FILE`` against a real ``leadroute serve``: CSV and JSONL files become
leads through ``POST /v1/leads:batch``; a second run creates nothing; bad rows are reported with
their line and fields, and make the exit code 1. The file side (column mapping, derived keys)
is also checked on its own."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadroute.config import Settings
from leadroute.errors import CommandError
from leadroute.imports import derived_key, detect_format, import_file, read_rows
from process_support import Served, cli_env, leadroute, serve_on
from support import AUTH, POOL_RULES, connection

CSV = '''\
Email,First Name,Company,Employees,Lead Score,event_id
ann@acme.example,Ann,Acme,5000,87,
bob@globex.example,Bob,Globex,,12,crm-42

not-an-email,Nobody,Nowhere,many,1,
"cat@initech.example","Cat, the ""CEO""",Initech,20,55,
'''


@pytest.fixture
def service(settings: Settings, clean: None, tmp_path: Path) -> Iterator[Served]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(POOL_RULES)
    served = serve_on(settings, rules, tmp_path / "serve.log")
    try:
        served.wait_ready()
        for ident in ("ann", "ben"):
            r = httpx.put(f"{served.base}/v1/owners/{ident}", json={"name": ident}, headers=AUTH)
            assert r.status_code == 200, r.text
        r = httpx.put(f"{served.base}/v1/pools/sales", json={"members": ["ann", "ben"]}, headers=AUTH)
        assert r.status_code == 200, r.text
        yield served
    finally:
        served.stop()


def run_import(served: Served, settings: Settings, path: Path, *args: str) -> Any:
    """The CLI as a user runs it, with the service's URL and the admin key in LEADROUTE_API_KEY."""
    env = cli_env(api_key=str(settings.admin_key))
    return leadroute("leads", "import", str(path), "--url", served.base, *args, env=env)


async def stored_leads(settings: Settings) -> list[dict[str, Any]]:
    async with connection(settings) as conn:
        rows = await conn.fetch("SELECT normalized FROM leads ORDER BY created_at, email")
    return [r["normalized"] for r in rows]


class TestImportCsv:
    """A CSV export becomes leads once, however often it is imported."""

    async def test_csv_rows_become_leads_and_a_rerun_creates_nothing(
        self, service: Served, settings: Settings, tmp_path: Path
    ) -> None:
        path = tmp_path / "contacts.csv"
        path.write_text(CSV)
        first = run_import(service, settings, path)
        assert first.returncode == 1, first.stderr  # one invalid row
        assert "contacts.csv: 4 rows" in first.stdout
        assert "created   3" in first.stdout
        assert "invalid   1" in first.stdout
        # the row's first line (a blank line before it), and each bad field
        invalid = [line for line in first.stdout.splitlines() if line.startswith("  line ")]
        assert len(invalid) == 1
        assert invalid[0].startswith("  line 5: ")
        assert "employees" in invalid[0]

        leads = await stored_leads(settings)
        by_email = {lead["email"]: lead for lead in leads}
        assert set(by_email) == {"ann@acme.example", "bob@globex.example", "cat@initech.example"}
        assert by_email["ann@acme.example"]["first_name"] == "Ann"
        assert by_email["ann@acme.example"]["employees"] == 5000
        assert by_email["ann@acme.example"]["attributes"] == {"lead_score": "87"}
        assert by_email["cat@initech.example"]["first_name"] == 'Cat, the "CEO"'
        assert by_email["bob@globex.example"]["employees"] is None

        again = run_import(service, settings, path)
        assert again.returncode == 1
        assert "created   0" in again.stdout
        assert "replayed  3" in again.stdout
        assert len(await stored_leads(settings)) == 3
        async with connection(settings) as conn:
            keys = {r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")}
        assert "crm-42" in keys  # the row's own event_id is its key

    async def test_a_clean_file_exits_0_and_progress_goes_to_stderr(
        self, service: Served, settings: Settings, tmp_path: Path
    ) -> None:
        path = tmp_path / "many.csv"
        path.write_text("email,title\n" + "".join(f"p{n}@co-{n}.example,VP Sales\n" for n in range(1203)))
        done = run_import(service, settings, path, "--batch-size", "250")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "created   1203" in done.stdout
        assert "importing many.csv 1,203/1,203 leads (100%)" in done.stderr  # plain lines: not a TTY
        assert len(await stored_leads(settings)) == 1203


class TestImportJsonl:
    """A JSONL file: each line a lead as the API takes it."""

    async def test_jsonl_rows_become_leads_and_a_rerun_creates_nothing(
        self, service: Served, settings: Settings, tmp_path: Path
    ) -> None:
        lines = [
            json.dumps({"email": "dee@acme.example", "title": "VP Sales", "attributes": {"plan": "pro"}}),
            "",
            json.dumps({"email": "eve@acme.example", "event_id": "hub-7", "employees": 40}),
            "{not json",
            json.dumps({"phone": "+1 415 555 2671", "utm_source": "webinar"}),
            json.dumps({"email": 5, "employees": -1}),
        ]
        path = tmp_path / "events.jsonl"
        path.write_text("\n".join(lines) + "\n")
        first = run_import(service, settings, path)
        assert first.returncode == 1
        assert "created   3" in first.stdout
        assert "invalid   2" in first.stdout
        assert "  line 4: body: not valid JSON" in first.stdout
        line6 = next(line for line in first.stdout.splitlines() if line.startswith("  line 6: "))
        assert "email" in line6
        assert "employees" in line6

        again = run_import(service, settings, path)
        assert "replayed  3" in again.stdout
        assert "created   0" in again.stdout
        assert len(await stored_leads(settings)) == 3

    def test_the_key_defaults_to_the_embedded_services_admin_key_file(
        self, service: Served, settings: Settings, tmp_path: Path
    ) -> None:
        data = tmp_path / "data"
        data.mkdir()
        (data / "admin.key").write_text(f"{settings.admin_key}\n")
        path = tmp_path / "one.jsonl"
        path.write_text(json.dumps({"email": "x@acme.example"}) + "\n")
        done = leadroute("leads", "import", str(path), "--url", service.base, env=cli_env(data_dir=str(data)))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "created   1" in done.stdout

    def test_a_wrong_key_stops_with_the_services_words(
        self, service: Served, settings: Settings, tmp_path: Path
    ) -> None:
        path = tmp_path / "one.jsonl"
        path.write_text(json.dumps({"email": "x@acme.example"}) + "\n")
        env = cli_env(api_key="lr_live_0000dead_" + "x" * 43)
        done = leadroute("leads", "import", str(path), "--url", service.base, env=env)
        assert done.returncode == 1
        assert "refused a batch (401)" in done.stderr


class TestTheFileSide:
    """Reading files needs no service: mapping, keys, formats."""

    def test_derived_keys_are_stable_and_depend_on_file_name_and_content(self, tmp_path: Path) -> None:
        a = tmp_path / "a.csv"
        a.write_text("email,title\nx@acme.example,VP\n")
        first = [r.lead["event_id"] for r in read_rows(a, "csv")]
        a.write_text("title,email\n\nVP,x@acme.example\n")  # columns reordered, a blank line
        assert [r.lead["event_id"] for r in read_rows(a, "csv")] == first
        assert first == [derived_key("a.csv", {"email": "x@acme.example", "title": "VP"})]
        assert derived_key("b.csv", {"email": "x@acme.example", "title": "VP"}) != first[0]

    def test_formats_and_header_errors(self, tmp_path: Path) -> None:
        assert detect_format(Path("x.CSV"), None) == "csv"
        assert detect_format(Path("x.ndjson"), None) == "jsonl"
        assert detect_format(Path("x.txt"), "jsonl") == "jsonl"
        with pytest.raises(CommandError, match="--format"):
            detect_format(Path("x.txt"), None)
        bad = tmp_path / "bad.csv"
        bad.write_text("Email,e-mail,E Mail\n")
        with pytest.raises(CommandError, match="e_mail appear twice"):
            list(read_rows(bad, "csv"))

    def test_a_batch_the_service_cannot_take_now_is_sent_again(self, tmp_path: Path) -> None:
        path = tmp_path / "two.jsonl"
        path.write_text('{"email": "a@acme.example"}\n{"email": "b@acme.example"}\n')
        calls: list[list[Any]] = []

        def answer(request: httpx.Request) -> httpx.Response:
            items = json.loads(request.content)
            calls.append(items)
            if len(calls) == 1:
                return httpx.Response(503, headers={"Retry-After": "1"}, json={"title": "Overloaded"})
            results = [{"index": i, "status": 201, "decision": {}} for i in range(len(items))]
            return httpx.Response(200, json={"results": results, "counts": {}})

        slept: list[float] = []
        out = io.StringIO()
        report = import_file(
            path,
            "jsonl",
            url="http://leadroute.test",
            key="k",
            batch_size=10,
            out=out,
            progress=io.StringIO(),
            transport=httpx.MockTransport(answer),
            sleep=slept.append,
        )
        assert report.created == 2
        assert slept == [1.0]
        assert calls[0] == calls[1]  # the same items, keys included
        assert all(item["event_id"].startswith("import-") for item in calls[0])
