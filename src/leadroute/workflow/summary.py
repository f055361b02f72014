"""The routing part of explain's summary: which rule chose which pool, who was skipped and why."""

from __future__ import annotations

from typing import Any

__all__ = ["routing_summary", "skipped_owners"]


def routing_summary(routing: dict[str, Any], placed: dict[str, Any]) -> str:
    """How routing placed the lead, for a person: "why did this lead go to Bob?".

    ``routing`` and ``placed`` are a decision's ``routing`` and ``assignment`` explanations.
    """
    text = ""
    # Why an account-owner rule did not apply, unless an owner skip below says it (or the queue
    # reason does); decisions stored before this was recorded have none.
    misses = [m for m in placed.get("account") or [] if m["owner"] is None]
    if misses and placed.get("owner") is not None:
        text += "; ".join(f"Account owner rule {m['rule']!r}: {m['why']}" for m in misses) + ". "
    if routing["rule"] is None:
        text += "No routing rule matched"
    else:
        text += f"Routing rule {routing['rule']!r} chose pool {routing['pool']!r}"
    if placed.get("unchanged"):
        return text + f"; routing did not run again: {placed['reason']}."
    skipped = placed["owners_skipped"]
    if skipped:
        text += "; skipped " + skipped_owners(skipped)
    if placed["owner"] is not None:
        how = (placed.get("strategy") or "routing").replace("_", " ")
        where = "as the account's owner" if how == "account owner" else f"by {how} in pool {placed['pool']!r}"
        text += f"; assigned to {placed['owner']} {where}."
    elif placed["reason"] == "no routing rule matched" and routing["rule"] is None:
        text += f"; left in queue {placed['queue']!r}."  # the reason would say it twice
    else:
        text += f"; left in queue {placed['queue']!r}: {placed['reason']}."
    return text


def skipped_owners(skipped: list[dict[str, Any]]) -> str:
    """Each skipped owner once, in the order they were met: ``bob (inactive), carl (off_hours)``.

    An owner can be skipped at several places: as the account owner (``pool`` null) and again as
    a member of the pool, or in a pool and its fallback. They are named once, with where:
    ``bob (inactive, as the account owner and in pool 'sales')``, or per reason when the reasons
    differ (``bob (off_hours as the account owner, over_capacity in pool 'sales')``). A single
    skip in a pool keeps the short form.
    """
    places: dict[str, dict[str, list[str | None]]] = {}  # owner -> reason -> pools (None: account)
    for s in skipped:
        pools = places.setdefault(s["owner"], {}).setdefault(s["reason"], [])
        if s["pool"] not in pools:
            pools.append(s["pool"])
    parts = []
    for who, reasons in places.items():
        if len(reasons) == 1:
            reason, pools = next(iter(reasons.items()))
            short = len(pools) == 1 and pools[0] is not None
            parts.append(f"{who} ({reason})" if short else f"{who} ({reason}, {_where(pools)})")
        else:
            parts.append(f"{who} (" + ", ".join(f"{r} {_where(p)}" for r, p in reasons.items()) + ")")
    return ", ".join(parts)


def _where(pools: list[str | None]) -> str:
    """``as the account owner and in pools 'a' and 'b'``."""
    named = [p for p in pools if p is not None]
    where = ["as the account owner"] if None in pools else []
    if named:
        quoted = [repr(p) for p in named]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        where.append(f"in pool{'s' if len(named) > 1 else ''} {listed}")
    return " and ".join(where)
