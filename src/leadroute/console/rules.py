"""Rules: stored versions, a diff of any two, drafts (validate, upload), the playground, replay,
and activate or roll back.

Every action is a call into what ``/v1/rulesets``, ``/v1/simulate`` and ``/v1/rulesets/replay``
call (:mod:`leadroute.rulesets.admin`, :func:`leadroute.replay.simulate`,
:func:`leadroute.replay.replay_request`), and asks the same scope: reading, drafts, the playground
and replay ``rules:write``; activate and roll back ``rules:activate``. Forms are parsed by the
API's own parsers (the simulate and replay bodies are built and checked by ``parse_simulation``
and ``parse_replay``), so a bad field is refused here exactly as there.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from leadroute.api.problems import Problem, problem_for
from leadroute.console._pages import page
from leadroute.console._session import Viewer
from leadroute.errors import ClientError, InvalidLead, RulesetError
from leadroute.replay import STAGES, parse_replay, parse_simulation, replay_request, simulate
from leadroute.rulesets import admin
from leadroute.rulesets.admin import RollbackIn, RuleFile
from leadroute.runtime import Runtime
from leadroute.structs import Struct

__all__ = ["DiffLine", "RulePages", "diff_lines"]

Rt = NamedDependency[Runtime]
Who = NamedDependency[Viewer]

LEAD_FIELDS: Final = (
    ("email", "Email", "email"),
    ("first_name", "First name", "text"),
    ("last_name", "Last name", "text"),
    ("title", "Job title", "text"),
    ("company", "Company", "text"),
    ("website", "Website", "text"),
    ("phone", "Phone", "tel"),
    ("country", "Country", "text"),
    ("employees", "Employees", "number"),
    ("annual_revenue", "Annual revenue", "number"),
    ("industry", "Industry", "text"),
    ("source", "Source", "text"),
    ("utm_source", "utm_source", "text"),
    ("utm_medium", "utm_medium", "text"),
    ("utm_campaign", "utm_campaign", "text"),
)
"""The playground's lead form: ``POST /v1/leads`` fields (name, label, input type)."""
_NUMBERS: Final = frozenset({"employees", "annual_revenue"})
ERRORS: Final = (ClientError, InvalidLead, RulesetError)
"""What a form shows beside its fields instead of an error page."""


class DiffLine(Struct):
    """A line of a unified diff: ``add``, ``del``, ``hunk`` or ``same``."""

    kind: str
    text: str


def diff_lines(before: str, after: str, *, before_name: str, after_name: str) -> list[DiffLine]:
    """The unified diff of two rule files' text, line by line, for display."""
    lines = []
    for line in difflib.unified_diff(
        before.splitlines(), after.splitlines(), before_name, after_name, lineterm="", n=3
    ):
        if line.startswith(("+++", "---", "@@")):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        lines.append(DiffLine(kind, line))
    return lines


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def _rule_text(form: Any) -> tuple[str, str]:
    """A draft's YAML and file name: an uploaded file wins over the pasted text."""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        body = await upload.read()
        return body.decode("utf-8", errors="replace"), Path(upload.filename).name
    return _text(form, "source").replace("\r\n", "\n"), Path(_text(form, "name") or "draft.yaml").name


def _bad_lines(problem: Problem | None) -> set[int]:
    if problem is None:
        return set()
    lines = (e.get("line") for e in problem.errors)
    return {line for line in lines if isinstance(line, int)}


class RulePages(Controller):
    path = "/rules"
    include_in_schema = False

    @get("/")
    async def versions(
        self,
        rt: Rt,
        viewer: Who,
        activated: FromQuery[int | None] = None,
        uploaded: FromQuery[int | None] = None,
    ) -> Template:
        """Every stored version, newest first, the active one marked; the diff form."""
        listed = await admin.versions(rt)
        return page(
            "rules/versions.html",
            viewer,
            listed=listed,
            activated=activated,
            uploaded=uploaded,
            running=admin.active_summary(rt),
        )

    @get("/{version:int}")
    async def version(self, rt: Rt, viewer: Who, version: FromPath[int]) -> Template:
        """One version: its source with line numbers, its activations, replay and activate."""
        detail = await admin.version_detail(rt, version)
        listed = await admin.versions(rt)
        return page("rules/version.html", viewer, detail=detail, others=listed.versions)

    @get("/diff")
    async def diff(self, rt: Rt, viewer: Who, a: FromQuery[int], b: FromQuery[int]) -> Template:
        """What changes from version ``a`` to version ``b``."""
        before, after = await admin.version_detail(rt, a), await admin.version_detail(rt, b)
        lines = diff_lines(
            before.source or "", after.source or "", before_name=f"version {a}", after_name=f"version {b}"
        )
        listed = await admin.versions(rt)
        return page("rules/diff.html", viewer, a=a, b=b, lines=lines, versions=listed.versions)

    @get("/draft")
    async def draft_form(self, rt: Rt, viewer: Who, start: FromQuery[int | None] = None) -> Template:
        """The draft editor, empty or starting from a stored version's text."""
        source = ""
        if start is not None:
            source = (await admin.version_detail(rt, start)).source or ""
        return page(
            "rules/draft.html", viewer, source=source, name="draft.yaml", problem=None, validation=None
        )

    @post("/draft", status_code=200)
    async def draft(self, request: Request[Any, Any, Any], rt: Rt, viewer: Who) -> Template | Redirect:
        """Validate the draft (``action=validate``) or store it (``action=upload``), as
        ``POST /v1/rulesets/validate`` and ``POST /v1/rulesets`` do; errors beside its lines."""
        form = await request.form()
        source, name = await _rule_text(form)
        rule_file = RuleFile(body=source.encode(), media="text/yaml", name=name)
        problem: Problem | None = None
        validation = None
        try:
            if _text(form, "action") == "upload":
                uploaded = await admin.upload(rt, rule_file, viewer.actor)
                return Redirect(f"/console/rules/{uploaded.version}?uploaded=1", status_code=303)
            validation = await admin.validate(rt, rule_file)
        except ERRORS as exc:
            problem = problem_for(exc)
        return page(
            "rules/draft.html",
            viewer,
            status_code=problem.status if problem else 200,
            source=source,
            name=name,
            problem=problem,
            bad_lines=_bad_lines(problem),
            validation=validation,
        )

    @get("/playground")
    async def playground_form(self, rt: Rt, viewer: Who, version: FromQuery[int | None] = None) -> Template:
        """A lead form; the decision it would get under a version, a draft, or the active ruleset."""
        listed = await admin.versions(rt)
        return page(
            "rules/playground.html",
            viewer,
            fields=LEAD_FIELDS,
            values={"ruleset_choice": f"version:{version}" if version else "active"},
            versions=listed.versions,
            answer=None,
            problem=None,
            field_errors={},
        )

    @post("/playground", status_code=200)
    async def playground(self, request: Request[Any, Any, Any], rt: Rt, viewer: Who) -> Template:
        """Run the lead through ``POST /v1/simulate``'s code: the full decision and why."""
        form = await request.form()
        values = {name: _text(form, name) for name in (*(f[0] for f in LEAD_FIELDS), "lead_id", "ruleset")}
        values["ruleset_choice"] = _text(form, "ruleset_choice") or "active"
        answer = None
        problem: Problem | None = None
        try:
            answer = await simulate(rt, parse_simulation(msgspec.json.encode(_simulation_body(values))))
        except ERRORS as exc:
            problem = problem_for(exc)
        listed = await admin.versions(rt)
        return page(
            "rules/playground.html",
            viewer,
            status_code=problem.status if problem else 200,
            fields=LEAD_FIELDS,
            values=values,
            versions=listed.versions,
            answer=answer,
            problem=problem,
            field_errors=_field_errors(problem),
        )

    @post("/replay", status_code=200)
    async def replay(self, request: Request[Any, Any, Any], rt: Rt, viewer: Who) -> Template:
        """Replay the last N days of leads under a stored version (or a draft's text), as
        ``POST /v1/rulesets/replay``: the stage matrix, pool changes and example leads."""
        form = await request.form()
        body: dict[str, Any] = {"examples": 5}
        version = _text(form, "version")
        if version:
            body["version"] = int(version) if version.isdigit() else version
        else:  # the draft editor's text (or file), not stored
            body["candidate"] = (await _rule_text(form))[0]
        days = _text(form, "days").strip()
        if days:
            body["since"] = f"{days}d" if days.isdigit() else days
        limit = _text(form, "limit").strip()
        if limit:
            body["limit"] = int(limit) if limit.isdigit() else limit
        request_body = parse_replay(msgspec.json.encode(body))
        report = await replay_request(rt, request_body)
        return page(
            "rules/replay.html",
            viewer,
            report=report,
            stages=STAGES,
            version=request_body.version,
            days=days,
            limit=request_body.limit,
        )

    @post("/{version:int}/activate", status_code=303)
    async def activate(self, rt: Rt, viewer: Who, version: FromPath[int]) -> Redirect:
        """Make ``version`` active fleet-wide (``POST /v1/rulesets/{version}/activate``)."""
        answer = await admin.activate(rt, version, viewer.actor)
        return Redirect(f"/console/rules?activated={answer.active.version}", status_code=303)

    @post("/rollback", status_code=303)
    async def rollback(self, request: Request[Any, Any, Any], rt: Rt, viewer: Who) -> Redirect:
        """Go back to the previous version, or to the one chosen (``POST /v1/rulesets/rollback``)."""
        form = await request.form()
        target = _text(form, "version")
        body = admin.parse_rollback(
            msgspec.json.encode({"version": int(target)}) if target.isdigit() else b""
        )
        answer = await admin.roll_back(rt, body if body != RollbackIn() else None, viewer.actor)
        return Redirect(f"/console/rules?activated={answer.active.version}", status_code=303)


def _field_errors(problem: Problem | None) -> dict[str, str]:
    """The playground's form field each error names (``lead.employees`` → ``employees``)."""
    if problem is None:
        return {}
    named = {}
    for error in problem.errors:
        field = str(error.get("field") or "")
        if field.startswith("lead."):
            named[field.removeprefix("lead.")] = str(error.get("message", ""))
        elif field in {"lead_id", "ruleset", "ruleset_version"}:
            named[field] = str(error.get("message", ""))
    return named


def _simulation_body(values: dict[str, str]) -> dict[str, Any]:
    """The ``POST /v1/simulate`` body the playground form stands for."""
    body: dict[str, Any] = {}
    lead_id = values.get("lead_id", "").strip()
    if lead_id:
        body["lead_id"] = lead_id
    else:
        lead: dict[str, Any] = {}
        for name, _, _ in LEAD_FIELDS:
            raw = values.get(name, "").strip()
            if not raw:
                continue
            if name in _NUMBERS:
                try:
                    lead[name] = int(raw) if name == "employees" else float(raw)
                except ValueError:
                    lead[name] = raw  # the lead parser names the field and says what it takes
            else:
                lead[name] = raw
        body["lead"] = lead
    choice = values.get("ruleset_choice", "active")
    if choice == "draft":
        body["ruleset"] = values.get("ruleset", "").replace("\r\n", "\n")
    elif choice.startswith("version:"):
        number = choice.removeprefix("version:")
        body["ruleset_version"] = int(number) if number.isdigit() else number
    return body
