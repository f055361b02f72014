"""The one base of leadroute's msgspec Structs, and why each of its settings is on.

``kw_only=True``
    Fields are always named when a Struct is built, so adding a field (with a default) never
    shifts another, and a field with a default may come before one without.
``forbid_unknown_fields=True``
    Decoding a body, a rule file or an owners file with a key the Struct does not have is an
    error naming that key: a typo (``accept_within_minuts``) is caught when it is sent, not
    discovered when the setting silently does nothing. Structs that are only ever encoded are
    unaffected.

Subclasses add what their role needs: ``frozen=True`` for values of the pure core (hashable,
never changed after they are built), ``omit_defaults=True`` for bodies where an unset field is
better left out than sent as ``null``, ``tag=...`` for tagged unions.
"""

from __future__ import annotations

import msgspec

__all__ = ["Struct"]


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every Struct leadroute defines (see the module docstring for its settings)."""
