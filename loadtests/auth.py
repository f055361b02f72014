"""The API key the load tests and the demo send: ``LR_API_KEY``, else the embedded default's
first-start admin key file (``<data dir>/admin.key``, ``.leadroute`` by default).

Not a ``LEADROUTE_*`` variable: those are the service's settings, and it refuses unknown ones.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_KEY_FILE", "KEY_ENV", "api_key", "auth_headers"]

KEY_ENV = "LR_API_KEY"
DEFAULT_KEY_FILE = Path(".leadroute/admin.key")


def api_key(key_file: Path = DEFAULT_KEY_FILE) -> str | None:
    """The key to send, or None when there is none to be found."""
    if key := os.environ.get(KEY_ENV):
        return key.strip()
    try:
        return key_file.read_text().strip()
    except OSError:
        return None


def auth_headers(key_file: Path = DEFAULT_KEY_FILE) -> dict[str, str]:
    """``Authorization: Bearer <key>``, or nothing (the service will answer 401)."""
    key = api_key(key_file)
    return {"Authorization": f"Bearer {key}"} if key else {}
