"""Alert templates: the words of every Slack message and email, editable by sales ops.

One YAML file (``LEADROUTE_ALERT_TEMPLATES``; the default ships as ``alerts.yaml`` beside this
module) maps each template name (:data:`TEMPLATE_NAMES`) to a :class:`string.Template` text using
:data:`FIELDS`. The file is checked whole at start-up: a template missing or unknown, a bad
``$`` placeholder or an unknown field is a :class:`SettingsError` naming the template and field,
so a typo never reaches a rep as a half-rendered message.
"""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path
from typing import Final

import yaml

from leadroute.errors import SettingsError

__all__ = ["FIELDS", "TEMPLATE_NAMES", "Templates", "load_templates"]

TEMPLATE_NAMES: Final = (
    "lead.assigned",
    "lead.reassigned",
    "lead.escalated",
    "lead.sla_warning",
    "lead.sla_warning.escalation",
    "lead.sla_breached",
    "lead.sla_breached.escalation",
    "lead.queued",
)
"""One template per alerted event; ``*.escalation`` is the pool's ``escalate_to``'s."""
OPTIONAL: Final = frozenset(("lead.sla_warning", "lead.sla_warning.escalation"))
"""Templates added after the file format shipped: a file without them takes the shipped ones."""
FIELDS: Final = frozenset(
    (
        "rep",
        "owner",
        "owner_name",
        "lead_id",
        "summary",
        "link",
        "pool",
        "due_at",
        "minutes_left",
        "queue",
        "count",
        "escalate_to",
    )
)
_SETTING: Final = "LEADROUTE_ALERT_TEMPLATES"


class Templates:
    """The checked templates; :meth:`render` fills one (absent fields render empty)."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts
        self._templates = {name: string.Template(text) for name, text in texts.items()}

    def render(self, name: str, fields: dict[str, str]) -> str:
        values = dict.fromkeys(FIELDS, "") | fields
        return self._templates[name].substitute(values).strip()


def _check(name: str, text: object) -> str:
    if not isinstance(text, str):
        raise SettingsError(f"{_SETTING}: template {name!r} must be text")
    template = string.Template(text)
    if not template.is_valid():
        try:
            template.substitute(dict.fromkeys(FIELDS, ""))
        except (ValueError, KeyError) as exc:
            raise SettingsError(f"{_SETTING}: template {name!r}: {exc}") from None
    unknown = sorted(set(template.get_identifiers()) - FIELDS)
    if unknown:
        raise SettingsError(
            f"{_SETTING}: template {name!r}: unknown field ${unknown[0]} (known: {', '.join(sorted(FIELDS))})"
        )
    return text


def load_templates(path: Path | None) -> Templates:
    """The templates of ``path`` (None: the shipped default), checked; :class:`SettingsError` if not."""
    try:
        raw = (
            path.read_text(encoding="utf-8")
            if path is not None
            else resources.files("leadroute.outbound").joinpath("alerts.yaml").read_text(encoding="utf-8")
        )
        texts = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{_SETTING}: cannot read {path}: {exc}") from None
    if not isinstance(texts, dict):
        raise SettingsError(f"{_SETTING}: expected a mapping of template name to text")
    for name in texts:
        if name not in TEMPLATE_NAMES:
            raise SettingsError(f"{_SETTING}: unknown template {name!r} (known: {', '.join(TEMPLATE_NAMES)})")
    if path is not None and OPTIONAL - set(texts):
        shipped = load_templates(None)._texts
        texts |= {name: shipped[name] for name in OPTIONAL if name not in texts}
    for name in TEMPLATE_NAMES:
        if name not in texts:
            raise SettingsError(f"{_SETTING}: template {name!r} is missing")
    return Templates({name: _check(name, texts[name]) for name in TEMPLATE_NAMES})
