"""The Redis client: the only place leadroute builds one, so every client fails and recovers alike.

- A connection that went stale (Redis restarted, an idle connection cut by a proxy) is noticed
  before use (``health_check_interval``: an idle connection is PINGed first) and a command that
  meets a dropped connection is retried once on a new one (``retry``). One retry, with a short
  backoff: redis-py's default (10 retries, up to 10 s apart) would hold every request for most of
  a minute during an outage instead of answering 503 at once.
- A retried Lua claim could, in the rare case that the first attempt ran but its reply was lost,
  count one open lead twice; the periodic reconcile (:mod:`leadroute.routing.reconcile`) corrects
  such drift from PostgreSQL.
- Connect and read timeouts are short: a Redis that hangs answers 503, not a stuck request.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

__all__ = ["redis_client"]

HEALTH_CHECK_SECONDS = 15
"""An idle connection older than this is PINGed before it carries a command."""


def redis_client(url: str) -> Redis:
    """A client for ``url`` with leadroute's retry and timeout settings."""
    tcp = {} if url.startswith("unix://") else {"socket_keepalive": True}  # unix sockets take none
    return Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=1),
        retry_on_error=[ConnectionError, TimeoutError],
        health_check_interval=HEALTH_CHECK_SECONDS,
        socket_connect_timeout=2,
        socket_timeout=10,
        **tcp,
    )
