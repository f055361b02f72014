"""What every lead and activity body must satisfy before its fields are read: bounded nesting,
and no control characters in any string.

Nesting. msgspec decodes recursively: arrays 1,000 deep (a 2 KB body) raised ``RecursionError``,
a 500. :func:`decode_body` turns that, and anything nested deeper than
:data:`~leadroute.models.MAX_JSON_DEPTH`, into :class:`MalformedBody` (400, field ``body``). A
lead or an event is at most three levels deep (body, ``attributes``/``properties``, a list), so
the bound only stops abuse.

Control characters (Unicode ``Cc``: U+0000-U+001F, U+007F-U+009F). PostgreSQL refuses U+0000
in text and ``jsonb``: the insert failed with a 500, and the database log kept a snippet of the
lead. No field needs them: a name, a title or a URL is one line, and free text (an attribute or
activity property: a form's "message" box) may hold tab and line breaks (LF, and the CR of a
browser's CRLF), nothing else. :func:`control_problem` checks a value, keys and nested values
included; the message gives the code point and never the value.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from leadroute.intake.errors import MalformedBody
from leadroute.models import MAX_JSON_DEPTH

__all__ = ["control_problem", "decode_body", "printable"]

_ONE_LINE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FREE_TEXT: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TOO_DEEP: Final = f"body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep"


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """``body`` decoded, or :class:`MalformedBody`: not JSON, or nested past ``MAX_JSON_DEPTH``."""
    try:
        raw = decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's own limit, near Python's recursion limit
        raise MalformedBody(_TOO_DEEP) from None
    if _depth_exceeds(raw, MAX_JSON_DEPTH):
        raise MalformedBody(_TOO_DEEP)
    return raw


def _depth_exceeds(value: Any, allowed: int) -> bool:
    """Whether ``value`` nests more than ``allowed`` levels (recursion bounded by ``allowed``)."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if allowed == 0:
        return True
    return any(_depth_exceeds(child, allowed - 1) for child in children)


def control_problem(value: Any, *, free_text: bool) -> str | None:
    """What is wrong with ``value``'s strings (keys and nested values too), or None.

    ``free_text`` allows tab, LF and CR. Call on decoded bodies only: their depth is bounded.
    """
    pattern = _FREE_TEXT if free_text else _ONE_LINE
    found = _first_control(value, pattern)
    if found is None:
        return None
    allowed = "only tab and line breaks are allowed in free text" if free_text else "this is one line of text"
    return f"contains control character U+{ord(found):04X}; {allowed}"


def _first_control(value: Any, pattern: re.Pattern[str]) -> str | None:
    if isinstance(value, str):
        match = pattern.search(value)
        return match.group() if match else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_control(key, pattern) or _first_control(item, pattern)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _first_control(item, pattern)
            if found:
                return found
    return None


def printable(name: str, limit: int = 64) -> str:
    """A client-chosen key for an error's field name: cut to ``limit``, control characters as ``?``."""
    return _ONE_LINE.sub("?", name[:limit])
