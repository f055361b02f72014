"""Helpers for the console's tests: sign in a test client with a key, read a form's CSRF token."""

from __future__ import annotations

import html as html_module
import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from support import AUTH, authed

Client = AsyncTestClient[Litestar]

_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf(html: str) -> str:
    """The CSRF token of the first form in a page."""
    found = _CSRF.search(html)
    assert found is not None, "no form with a CSRF token on this page"
    return found.group(1)


async def sign_in(client: Client, key: str) -> str:
    """Sign ``client`` in to the console with ``key``; the CSRF token of its forms."""
    form = await client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    r = await client.post("/console/sign-in", data={"key": key, "_csrf": csrf(form.text)})
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"], follow_redirects=True)
    return csrf(page.text)


async def new_key(admin: Client, *scopes: str, name: str = "console test") -> str:
    """A key with ``scopes``, made through the API with the admin key."""
    r = await admin.post("/v1/keys", json={"name": name, "scopes": list(scopes)}, headers=AUTH)
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def text_of(html: str) -> str:
    """A page's text without tags (to assert on what a person reads)."""
    return html_module.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def console_client(app: Litestar) -> Client:
    """A client of ``app`` that sends the admin key to ``/v1`` (to set things up) and does not
    follow redirects (tests check where they go). The console ignores ``Authorization``: it
    signs in with its cookie only, so the admin key opens no console page."""
    client = authed(app)
    client.follow_redirects = False
    return client


DRAFT_RULES = """\
version: 2
description: senior people are MQLs
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 60}
qualification:
  - {id: senior-mql, stage: mql, when: 'score >= 50'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""
"""Version 2 of ``support.POOL_RULES``: a VP (60 points) becomes an MQL instead of a lead."""

BROKEN_RULES = """\
version: 3
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ ', points: 60}
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""
"""A rule file whose rule ``senior`` (line 6) does not parse."""
