"""Access: API keys, their scopes, and the checks every ``/v1`` request passes.

- :mod:`._tokens`: the key format ``lr_live_<id>_<secret>`` and why its secret is hashed with SHA-256.
- :mod:`._scopes`: the scopes and :data:`ROUTE_SCOPES`, the one table of who may call which route.
- :mod:`._cache`: verified keys remembered in-process for ``LEADROUTE_KEY_CACHE_SECONDS``.
- :mod:`._middleware`: 401/403/415, CORS per key, security headers, the actor of each change.
- :mod:`._bootstrap`: ``LEADROUTE_ADMIN_KEY`` and the first start's admin key file.

See docs/security.md for the threat model.
"""

from leadroute.access._bootstrap import (
    ADMIN_KEY_FILE,
    create_key,
    first_start_key,
    rotate,
    seed_admin_key,
    write_key_file,
)
from leadroute.access._cache import KeyCache, Principal
from leadroute.access._middleware import (
    AccessMiddleware,
    actor_of,
    provide_actor,
    provide_x_actor,
    security_headers,
)
from leadroute.access._openapi import COMPONENTS, document_access
from leadroute.access._scopes import (
    ADMIN,
    CONSOLE_SCOPES,
    FORM_BODIES,
    NON_JSON_BODIES,
    ORIGIN_PATTERN,
    QUERY_KEY_ROUTES,
    ROUTE_SCOPES,
    SCOPES,
    SIGNED_ROUTES,
    ConsoleAccess,
    Scope,
    grants,
    required_scope,
)
from leadroute.access._tokens import PREFIX, digest, format_key, new_secret, parse_key

__all__ = [
    "ADMIN",
    "ADMIN_KEY_FILE",
    "COMPONENTS",
    "CONSOLE_SCOPES",
    "FORM_BODIES",
    "NON_JSON_BODIES",
    "ORIGIN_PATTERN",
    "PREFIX",
    "QUERY_KEY_ROUTES",
    "ROUTE_SCOPES",
    "SCOPES",
    "SIGNED_ROUTES",
    "AccessMiddleware",
    "ConsoleAccess",
    "KeyCache",
    "Principal",
    "Scope",
    "actor_of",
    "create_key",
    "digest",
    "document_access",
    "first_start_key",
    "format_key",
    "grants",
    "new_secret",
    "parse_key",
    "provide_actor",
    "provide_x_actor",
    "required_scope",
    "rotate",
    "security_headers",
    "seed_admin_key",
    "write_key_file",
]
