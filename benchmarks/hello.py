"""The baseline of ``bench_intake``: a Litestar + msgspec app that decodes a lead-sized JSON body
and answers JSON, served exactly like ``leadroute serve`` (uvicorn, uvloop, httptools, no access
log). What a request costs when it does nothing: the HTTP stack's ceiling on this machine."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, post


class Body(msgspec.Struct):
    email: str
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


@post("/v1/leads", status_code=201)
async def create(data: Body) -> dict[str, str]:
    return {"lead_id": "0", "email_domain": data.email.rpartition("@")[2]}


app = Litestar([create])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
