"""The two bases of leadroute's msgspec Structs, and why each of their settings is on.

:class:`Struct` is for bodies and records that are built and then filled in; :class:`FrozenStruct`
for values of the pure core (hashable, never changed after they are built). Both set:

``forbid_unknown_fields=True``
    Decoding a body, a rule file or an owners file with a key the Struct does not have is an
    error naming that key: a typo (``accept_within_minuts``) is caught when it is sent, not
    discovered when the setting silently does nothing. Structs that are only ever encoded are
    unaffected. Subclasses inherit it.

What the bases do *not* set, because a base cannot set it for its subclasses:

``kw_only=True``
    msgspec applies ``kw_only`` only to the fields of the class that sets it, never to those a
    subclass adds (``class Sub(Struct): a: int`` still takes ``Sub(1)``). So each Struct whose
    fields should always be named when it is built says ``kw_only=True`` itself; then adding a
    field (with a default) never shifts another, and a field with a default may come before one
    without. Small positional values (``Claim``, ``Roster``) leave it off on purpose.
``frozen=True`` on a subclass of :class:`Struct`
    mypy refuses a frozen dataclass-like class under a non-frozen one (msgspec issue 657), so
    frozen Structs derive from :class:`FrozenStruct` instead, and say ``frozen=True`` again:
    mypy takes a subclass that omits it for a non-frozen one (at run time it is frozen either way).

Subclasses add what their role needs: ``omit_defaults=True`` for bodies where an unset field is
better left out than sent as ``null``, ``tag=...`` for tagged unions.
"""

from __future__ import annotations

import msgspec

__all__ = ["FrozenStruct", "Struct"]


class Struct(msgspec.Struct, forbid_unknown_fields=True):
    """Base of leadroute's mutable Structs (see the module docstring for its settings)."""


class FrozenStruct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of leadroute's frozen Structs; subclasses repeat ``frozen=True`` (for mypy)."""
