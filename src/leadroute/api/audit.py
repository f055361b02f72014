"""Admin: the audit trail — who changed which owner, pool or key, and who activated which ruleset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from leadroute.api.deps import PooledConnection
from leadroute.api.problems import problem_responses
from leadroute.store.audit import AuditEntry, audit_trail

__all__ = ["AuditController"]


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["admin"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @get(
        "/",
        summary="Who changed what: owners, pools, keys, ruleset activations",
        responses=problem_responses(400),
    )
    async def trail(
        self,
        conn: NamedDependency[PooledConnection],
        before: Annotated[datetime | None, Parameter(description="Only changes before this time")] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[AuditEntry]:
        """The newest changes first; page back with ``before`` set to the last ``at`` seen."""
        return await audit_trail(conn, before=before, limit=limit)
