"""Scopes, and the one table that says which scope each ``/v1`` route needs.

To audit who can do what, read :data:`ROUTE_SCOPES`: every ``/v1`` route is a row, keyed by
method and path template (as Litestar routes it, path parameters without their types). The
access middleware looks the request's route up here; a ``/v1`` route missing from the table is
refused to everyone (403) and fails ``tests/test_access.py``, so a new route cannot ship open.
``/health/*`` and ``/schema`` are outside ``/v1`` and open. The inbound routes vendors call
(:data:`SIGNED_ROUTES`) are not in the table: they authenticate by signature instead.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

__all__ = [
    "ADMIN",
    "CONSOLE_SCOPES",
    "FORM_BODIES",
    "NON_JSON_BODIES",
    "ORIGIN_PATTERN",
    "QUERY_KEY_ROUTES",
    "ROUTE_SCOPES",
    "SCOPES",
    "SIGNED_ROUTES",
    "ConsoleAccess",
    "Scope",
    "grants",
    "required_scope",
]

Scope = Literal[
    "leads:write",
    "leads:read",
    "assignments:write",
    "rules:write",
    "rules:activate",
    "routing:admin",
    "admin",
]
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
ADMIN: Final = "admin"
"""Keys, the audit trail; and it implies every other scope."""

# fmt: off
ROUTE_SCOPES: Final[Mapping[tuple[str, str], Scope]] = MappingProxyType({
    # intake: what a web form posts (safe in a browser with the key's CORS origins)
    ("POST",   "/v1/leads"):                            "leads:write",
    ("POST",   "/v1/leads:batch"):                      "leads:write",
    ("POST",   "/v1/events"):                           "leads:write",
    # a browser form (the key may come as ?key=, see QUERY_KEY_ROUTES)
    ("POST",   "/v1/inbound/form/{mapping}"):           "leads:write",
    # a lead as stored: personal data
    ("GET",    "/v1/leads/{lead_id}"):                  "leads:read",
    ("GET",    "/v1/leads/{lead_id}/explain"):          "leads:read",
    # the sales workflow
    ("POST",   "/v1/assignments/{lead_id}/accept"):     "assignments:write",
    ("POST",   "/v1/assignments/{lead_id}/reassign"):   "assignments:write",
    ("POST",   "/v1/assignments/{lead_id}/close"):      "assignments:write",
    # what sales made of a lead (not leads:write: that key sits in web forms, in the open)
    ("POST",   "/v1/leads/{lead_id}/outcome"):          "assignments:write",
    # reports (docs/reports.md): the dashboard for managers, calibration for who writes the rules
    ("GET",    "/v1/reports/distribution"):             "leads:read",
    ("GET",    "/v1/reports/calibration"):              "rules:write",
    # rulesets: read, upload, try out
    ("GET",    "/v1/rulesets"):                         "rules:write",
    ("GET",    "/v1/rulesets/active"):                  "rules:write",
    ("GET",    "/v1/rulesets/{version}"):               "rules:write",
    ("POST",   "/v1/rulesets"):                         "rules:write",
    ("POST",   "/v1/rulesets/validate"):                "rules:write",
    ("POST",   "/v1/rulesets/replay"):                  "rules:write",
    ("POST",   "/v1/simulate"):                         "rules:write",
    # rulesets: change what decides leads
    ("POST",   "/v1/rulesets/{version}/activate"):      "rules:activate",
    ("POST",   "/v1/rulesets/rollback"):                "rules:activate",
    # owners, pools and routing state
    ("GET",    "/v1/owners"):                           "routing:admin",
    ("GET",    "/v1/owners/{owner_id}"):                "routing:admin",
    ("PUT",    "/v1/owners/{owner_id}"):                "routing:admin",
    ("PATCH",  "/v1/owners/{owner_id}"):                "routing:admin",
    ("PUT",    "/v1/owners/{owner_id}/working-hours"):  "routing:admin",
    ("PUT",    "/v1/owners/{owner_id}/out-of-office"):  "routing:admin",
    ("GET",    "/v1/pools"):                            "routing:admin",
    ("GET",    "/v1/pools/{pool_id}"):                  "routing:admin",
    ("PUT",    "/v1/pools/{pool_id}"):                  "routing:admin",
    ("PATCH",  "/v1/pools/{pool_id}"):                  "routing:admin",
    ("GET",    "/v1/routing/state"):                    "routing:admin",
    ("POST",   "/v1/routing/rebuild"):                  "routing:admin",
    # outbound: webhook endpoints (their signing secrets), CRM connectors, the delivery log
    ("GET",    "/v1/webhooks"):                         "admin",
    ("POST",   "/v1/webhooks"):                         "admin",
    ("GET",    "/v1/webhooks/{endpoint_id}"):           "admin",
    ("PATCH",  "/v1/webhooks/{endpoint_id}"):           "admin",
    ("DELETE", "/v1/webhooks/{endpoint_id}"):           "admin",
    ("POST",   "/v1/webhooks/{endpoint_id}/rotate"):    "admin",
    ("GET",    "/v1/webhooks/{endpoint_id}/deliveries"): "admin",
    ("GET",    "/v1/webhooks/{endpoint_id}/attempts"):  "admin",
    ("POST",   "/v1/webhooks/{endpoint_id}/redeliver"): "admin",
    # keys and the audit trail
    ("GET",    "/v1/keys"):                             "admin",
    ("POST",   "/v1/keys"):                             "admin",
    ("GET",    "/v1/keys/{key_id}"):                    "admin",
    ("POST",   "/v1/keys/{key_id}/rotate"):             "admin",
    ("DELETE", "/v1/keys/{key_id}"):                    "admin",
    ("GET",    "/v1/audit"):                            "admin",
})
# fmt: on

# fmt: off
SIGNED_ROUTES: Final[Mapping[tuple[str, str], str]] = MappingProxyType({
    ("POST", "/v1/inbound/hubspot"):    "HubSpot signature v3 (LEADROUTE_HUBSPOT_CLIENT_SECRET)",
    ("POST", "/v1/inbound/salesforce"): "X-Leadroute-Signature (LEADROUTE_SALESFORCE_CALLOUT_SECRET), "
                                        "or an Outbound Message of LEADROUTE_SALESFORCE_ORG_ID",
    ("POST", "/v1/inbound/webhook"):    "Standard Webhooks (LEADROUTE_INBOUND_WEBHOOK_SECRETS)",
})
# fmt: on
"""Routes a vendor calls, which authenticate by the request's signature, not by an API key: the
access middleware lets them through without a key (a key would not be accepted instead of the
signature) and their handlers verify the signature first. Rate limits per address still apply."""

QUERY_KEY_ROUTES: Final = frozenset({("POST", "/v1/inbound/form/{mapping}")})
"""Routes a plain HTML form posts to: it cannot set ``Authorization``, so the (publishable,
``leads:write``) key may come as the ``key`` query parameter instead (docs/intake.md)."""

FORM_BODIES: Final = frozenset({("POST", "/v1/inbound/form/{mapping}")})
"""Routes whose body is a form (``application/x-www-form-urlencoded`` or ``multipart/form-data``;
else 415) instead of JSON."""
ConsoleAccess = Scope | Literal["open", "signed-in"]
"""What a console page needs: a scope, only a signed-in key (``signed-in``), or nothing (``open``)."""

# fmt: off
CONSOLE_SCOPES: Final[Mapping[tuple[str, str], ConsoleAccess]] = MappingProxyType({
    # signing in and out (the key is kept in an HttpOnly cookie; see docs/console.md)
    ("GET",    "/console"):                             "signed-in",
    ("GET",    "/console/sign-in"):                     "open",
    ("POST",   "/console/sign-in"):                     "open",
    ("POST",   "/console/sign-out"):                    "signed-in",
    # leads: personal data, as GET /v1/leads/{lead_id}
    ("GET",    "/console/leads"):                       "leads:read",
    ("POST",   "/console/leads"):                       "leads:read",
    ("GET",    "/console/leads/queued"):                "leads:read",
    ("GET",    "/console/leads/{lead_id}"):             "leads:read",
    # rules: read, drafts, the playground and replay, as /v1/rulesets and /v1/simulate
    ("GET",    "/console/rules"):                       "rules:write",
    ("GET",    "/console/rules/{version}"):             "rules:write",
    ("GET",    "/console/rules/diff"):                  "rules:write",
    ("GET",    "/console/rules/draft"):                 "rules:write",
    ("POST",   "/console/rules/draft"):                 "rules:write",
    ("GET",    "/console/rules/playground"):            "rules:write",
    ("POST",   "/console/rules/playground"):            "rules:write",
    ("POST",   "/console/rules/replay"):                "rules:write",
    # rules: change what decides leads
    ("POST",   "/console/rules/{version}/activate"):    "rules:activate",
    ("POST",   "/console/rules/rollback"):              "rules:activate",
    # owners, pools and routing state
    ("GET",    "/console/routing"):                     "routing:admin",
    ("POST",   "/console/routing/owners/{owner_id}/pause"):  "routing:admin",
    ("POST",   "/console/routing/owners/{owner_id}/resume"): "routing:admin",
    # reports: the distribution and SLA dashboard (managers), calibration (who writes the rules)
    ("GET",    "/console/dashboard"):                   "leads:read",
    ("GET",    "/console/calibration"):                 "rules:write",
})
# fmt: on
"""Every ``/console`` page, as :data:`ROUTE_SCOPES` for ``/v1``: the console checks the signed-in
key against this table (the same :func:`grants`), and a page missing from it is refused."""

ORIGIN_PATTERN: Final = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"
"""A browser origin a key may be used from: scheme, host and port, no path or trailing slash."""

NON_JSON_BODIES: Final = frozenset({("POST", "/v1/rulesets"), ("POST", "/v1/rulesets/validate")})
"""Routes whose body is a YAML rule file; every other ``/v1`` body must be JSON (else 415)."""


def required_scope(method: str, path_template: str) -> Scope | None:
    """The scope a route needs; None for a route missing from the table (refused to everyone)."""
    return ROUTE_SCOPES.get((method, path_template))


def grants(held: Collection[str], needed: Scope) -> bool:
    """Whether a key with scopes ``held`` may use a route needing ``needed`` (admin may do all)."""
    return needed in held or ADMIN in held
