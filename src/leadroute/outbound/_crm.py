"""CRM write-back: when a lead gets an owner, set that owner on the lead's record in the CRM.

Two connectors, each on when its settings are (``LEADROUTE_HUBSPOT_*``, ``LEADROUTE_SALESFORCE_*``),
driven by the relay like a webhook endpoint: the same deliveries (``lead.assigned``,
``lead.reassigned``, ``lead.escalated``), in order per lead, retried with the same backoff, in the
same delivery log. Each write sets the owner to a value, so sending it twice changes nothing.

The owner's id in the CRM is ``owners.crm_user_id`` (read when the write is sent). The lead's
record in the CRM comes from the lead's attributes as posted:

- HubSpot: ``attributes.hubspot_contact_id``; without it, the contact with the lead's email
  (``PATCH /crm/v3/objects/contacts/{email}?idProperty=email``, no search call needed).
  ``{"properties": {"hubspot_owner_id": <crm_user_id>}}`` with the private app's Bearer token.
- Salesforce: ``attributes.salesforce_lead_id`` (an 18- or 15-character Lead Id), else the
  ``salesforce_id`` of a lead that came in as a Salesforce Lead record (``salesforce_type: Lead``,
  as ``mappings/salesforce.yaml`` stores it); a Contact's id is never PATCHed as a Lead.
  ``PATCH /services/data/<version>/sobjects/Lead/<Id>`` with ``{"OwnerId": <crm_user_id>}`` and
  ``Sforce-Auto-Assign: FALSE`` (Salesforce's own assignment rules must not undo the decision),
  authorized by an OAuth 2.0 client-credentials token: fetched once, reused, fetched again on a 401.

A lead without a CRM record, or an owner without ``crm_user_id``, is *skipped* (logged with the
reason, not retried). A 429 waits for its ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from leadroute.config import Settings
from leadroute.outbound._send import Outcome, request

__all__ = ["HubSpot", "Salesforce"]


def _skip(why: str) -> Outcome:
    return Outcome("skipped", None, why)


def _owner_crm_id(job: Any) -> str | None:
    crm: str | None = job["owner_crm_user_id"]
    return crm


class HubSpot:
    """Sets ``hubspot_owner_id`` on the lead's HubSpot contact (CRM API v3)."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        assert settings.hubspot_token is not None
        self._client = client
        self._token = settings.hubspot_token
        self._base = settings.hubspot_base_url.rstrip("/")

    async def send(self, job: Any) -> Outcome:
        owner = _owner_crm_id(job)
        if owner is None:
            return _skip(f"owner {job['owner_id']!r} has no crm_user_id")
        params: dict[str, str] | None = None
        if job["hubspot_contact_id"]:
            contact = job["hubspot_contact_id"]
        elif job["lead_email"]:
            contact, params = job["lead_email"], {"idProperty": "email"}
        else:
            return _skip("the lead has no attributes.hubspot_contact_id and no email")
        return await request(
            self._client,
            "PATCH",
            f"{self._base}/crm/v3/objects/contacts/{quote(str(contact), safe='')}",
            headers={"authorization": f"Bearer {self._token}", "content-type": "application/json"},
            json={"properties": {"hubspot_owner_id": owner}},
            params=params,
        )


class Salesforce:
    """Sets ``OwnerId`` on the lead's Salesforce Lead (REST API, sObject Rows PATCH)."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        assert settings.salesforce_client_id is not None
        assert settings.salesforce_client_secret is not None
        assert settings.salesforce_token_url is not None
        self._client = client
        self._form = {
            "grant_type": "client_credentials",
            "client_id": settings.salesforce_client_id,
            "client_secret": settings.salesforce_client_secret,
        }
        self._token_url = settings.salesforce_token_url
        self._instance = settings.salesforce_instance_url
        self._version = settings.salesforce_api_version
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def _access_token(self, stale: str | None = None) -> tuple[str | None, Outcome | None]:
        """The cached token, or a new one if there is none or ``stale`` was refused (one fetch for
        all the sends waiting on it)."""
        async with self._lock:
            if self._token is not None and self._token != stale:
                return self._token, None
            self._token = None
            try:
                r = await self._client.post(self._token_url, data=self._form)
            except httpx.HTTPError as exc:
                return None, Outcome("retry", None, f"token request failed: {type(exc).__name__}")
            if r.status_code != 200:
                return None, Outcome("retry", r.status_code, "token request refused", r.text[:512])
            body = r.json()
            self._token = str(body["access_token"])
            if self._instance is None:
                self._instance = str(body["instance_url"])
            return self._token, None

    async def send(self, job: Any) -> Outcome:
        owner = _owner_crm_id(job)
        if owner is None:
            return _skip(f"owner {job['owner_id']!r} has no crm_user_id")
        lead = job["salesforce_lead_id"]
        if not lead:
            return _skip("the lead has no attributes.salesforce_lead_id")
        token, failed = await self._access_token()
        if failed is not None:
            return failed
        outcome = await self._patch(str(lead), owner, token)
        if outcome.status_code == 401:  # expired or revoked: a new token, and this write once more
            token, failed = await self._access_token(stale=token)
            if failed is not None:
                return failed
            outcome = await self._patch(str(lead), owner, token)
        return outcome

    async def _patch(self, lead: str, owner: str, token: str | None) -> Outcome:
        assert self._instance is not None
        url = (
            f"{self._instance.rstrip('/')}/services/data/{self._version}/sobjects/Lead/{quote(lead, safe='')}"
        )
        return await request(
            self._client,
            "PATCH",
            url,
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/json",
                "sforce-auto-assign": "FALSE",
            },
            json={"OwnerId": owner},
        )
