"""Issue 12's "Done when" on the embedded default: ``leadroute serve`` with nothing configured but
Slack and HubSpot (embedded PostgreSQL and Valkey, the demo owners) tells the rep in Slack and
writes the owner to HubSpot within seconds of an assignment and of a reassignment, over real
HTTP, against a local Slack receiver and a local HubSpot server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from outbound_support import receiver
from process_support import Served, free_port

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
FEW_SECONDS = 10.0
"""How long an alert and a write-back may take to arrive (the relay polls every second; the
machine is shared, so a margin)."""


def _mention(owner_id: str) -> str:
    return "U" + owner_id.upper().replace("-", "")


def test_assignment_and_reassignment_reach_slack_and_hubspot_within_seconds(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with receiver() as slack, receiver() as hubspot:
        served = Served(
            tmp_path / "serve.log",
            None,
            port=free_port(),
            data_dir=str(data_dir),
            slack_webhook_url=slack.url + "/services/T0/B0/x",
            hubspot_token=TOKEN,
            hubspot_base_url=hubspot.url,
        )
        try:
            served.wait_ready(timeout=120)
            auth = {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}
            with httpx.Client(base_url=served.base, headers=auth, timeout=30) as api:
                for person in api.get("/v1/owners").json():  # the demo owners, with their Slack and CRM ids
                    ident = person["id"]
                    r = api.patch(
                        f"/v1/owners/{ident}",
                        json={"slack_user_id": _mention(ident), "crm_user_id": f"hs-{ident}"},
                    )
                    assert r.status_code == 200, r.text

                posted = time.monotonic()
                decision = api.post(
                    "/v1/leads",
                    json={
                        "email": "jane@acme.example",
                        "title": "VP Sales",
                        "employees": 5000,
                        "country": "US",
                        "attributes": {"hubspot_contact_id": "501"},
                    },
                )
                assert decision.status_code in (200, 201, 202), decision.text
                lead_id, first = decision.json()["lead_id"], decision.json()["owner"]
                assert first is not None
                [told] = slack.wait_for(1, timeout=FEW_SECONDS)
                [written] = hubspot.wait_for(1, timeout=FEW_SECONDS)
                assigned_in = time.monotonic() - posted

                moved = time.monotonic()
                r = api.post(f"/v1/assignments/{lead_id}/reassign", json={"reason": "on holiday"})
                assert r.status_code == 200, r.text
                second = api.get(f"/v1/leads/{lead_id}").json()["owner"]
                assert second not in (None, first)
                told_again = slack.wait_for(2, timeout=FEW_SECONDS)[1]
                written_again = hubspot.wait_for(2, timeout=FEW_SECONDS)[1]
                reassigned_in = time.monotonic() - moved
        finally:
            assert served.stop() == 0, served.log.read_text()

    assert assigned_in < FEW_SECONDS
    assert reassigned_in < FEW_SECONDS
    link = f"http://127.0.0.1:8000/v1/leads/{lead_id}/explain"
    assert (told.method, told.path) == ("POST", "/services/T0/B0/x")
    assert told.json()["text"].startswith(f"New lead for you, <@{_mention(first)}>\n")
    assert told.json()["text"].endswith(link)
    assert told_again.json()["text"].startswith(f"New lead for you, <@{_mention(second)}> (reassigned)\n")
    for req, owner in ((written, first), (written_again, second)):
        assert (req.method, req.path) == ("PATCH", "/crm/v3/objects/contacts/501")
        assert req.headers["authorization"] == f"Bearer {TOKEN}"
        assert json.loads(req.body) == {"properties": {"hubspot_owner_id": f"hs-{owner}"}}
    for req in (told, told_again):
        assert "jane@acme.example" not in req.body.decode()  # never the lead's contact details
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600  # the embedded default's key
