"""Inbound routes over HTTP, on real PostgreSQL and Redis: HubSpot webhooks (signature v3, the
contact read from a local CRM API that checks the exact request), Salesforce Outbound Messages
and signed callouts, Standard Webhooks, and browser forms. Vendor retries are one lead."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
from standardwebhooks import Webhook

from leadroute.access import SIGNED_ROUTES
from leadroute.app import create_app
from leadroute.config import Settings
from outbound_support import Answer, Receiver, Request, receiver
from process_support import Served, free_port
from support import AUTH, Client, authed, count, fetch

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "https://leads.example.com"
HUBSPOT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HUBSPOT_TOKEN = "pat-na1-inbound-test"
CALLOUT_SECRET = "sf-callout-secret-0123456789abcdefghijklmnop"
ORG_ID = "00D5e000000KQ2eEAG"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"inbound-test-secret-0123456789ab").decode()


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {
        "mappings_path": ROOT / "mappings",
        "public_url": PUBLIC,
        "hubspot_client_secret": HUBSPOT_SECRET,
        "hubspot_token": HUBSPOT_TOKEN,
        "salesforce_callout_secret": CALLOUT_SECRET,
        "salesforce_org_id": ORG_ID[:15],  # Setup shows the 15-character id
        "inbound_webhook_secrets": f"typeform={WEBHOOK_SECRET}",
    }


@pytest.fixture
async def crm() -> AsyncIterator[Receiver]:
    """A local HubSpot CRM API: contact 123 exists (from HubSpot's docs' example), 404 is gone."""

    def answer(req: Request, _n: int) -> Answer:
        contact_id = urlsplit(req.path).path.rsplit("/", 1)[1]
        if contact_id == "500":
            return Answer(500, body=b'{"status":"error"}')
        if contact_id == "404":
            return Answer(404, body=b'{"status":"error","category":"OBJECT_NOT_FOUND"}')
        body = {
            "id": contact_id,
            "properties": {
                "email": f"contact{contact_id}@acme.example",
                "firstname": "Jane",
                "lastname": "Doe",
                "jobtitle": "VP Sales",
                "company": "Acme",
                "numemployees": "500-1000",
                "hs_object_id": contact_id,
            },
            "createdAt": "2019-07-26T04:00:00.000Z",
            "updatedAt": "2019-07-26T04:00:00.000Z",
            "archived": False,
        }
        return Answer(200, {"content-type": "application/json"}, json.dumps(body).encode())

    with receiver(answer) as r:
        yield r


@pytest.fixture
async def client(
    settings: Settings, clean: None, overrides: dict[str, Any], crm: Receiver
) -> AsyncIterator[Client]:
    configured = msgspec.structs.replace(settings, hubspot_base_url=crm.url, **overrides)
    async with authed(create_app(configured)) as c:
        yield c


class TestSignedRoutes:
    """A vendor route is not opened by a key, not even the admin key: only its signature counts."""

    @pytest.mark.parametrize(("method", "path"), sorted(SIGNED_ROUTES))
    async def test_a_key_is_not_a_signature(
        self, client: Client, settings: Settings, method: str, path: str
    ) -> None:
        body = b'[{"Id": "00Q5e00000ZYXWVUTS", "Email": "r.roe@globex.example"}]'
        r = await client.request(
            method,
            path + "?source=typeform",
            content=body,
            headers=AUTH | {"content-type": "application/json"},
        )
        assert r.status_code == 401, r.text
        assert r.json()["type"].endswith("/bad-signature")
        assert await count(settings, "SELECT count(*) FROM leads") == 0


# -- HubSpot ------------------------------------------------------------------------------------

# The example of HubSpot's "Validating requests" page (v1 section): a contact.creation event.
HUBSPOT_BATCH = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)


def hubspot_headers(
    body: bytes, *, uri: str = f"{PUBLIC}/v1/inbound/hubspot", age: float = 0
) -> dict[str, str]:
    """What HubSpot sends: the v3 signature computed as its docs say, independently of leadroute."""
    timestamp = str(int((time.time() - age) * 1000))
    source = b"POST" + uri.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(HUBSPOT_SECRET.encode(), source, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "x-hubspot-signature-v3": signature,
        "x-hubspot-request-timestamp": timestamp,
    }


async def hubspot(
    client: Client, body: bytes, headers: dict[str, str], path: str = "/v1/inbound/hubspot"
) -> Any:
    # no API key: the route authenticates by signature
    return await client.post(path, content=body, headers={**headers, "authorization": ""})


class TestHubSpot:
    """A signed batch becomes one lead per contact, read from the CRM API; retries change nothing."""

    async def test_a_signed_event_from_the_docs_becomes_a_lead(self, client: Client, crm: Receiver) -> None:
        r = await hubspot(client, HUBSPOT_BATCH, hubspot_headers(HUBSPOT_BATCH))
        assert r.status_code == 200, r.text
        [result] = r.json()["results"]
        assert result["item"] == "1"
        assert result["status"] == "created"
        [req] = crm.requests
        assert req.method == "GET"
        path, query = urlsplit(req.path).path, parse_qs(urlsplit(req.path).query)
        assert path == "/crm/v3/objects/contacts/123"
        assert query["properties"] == [
            "annualrevenue,city,company,country,email,firstname,hs_analytics_source,industry,jobtitle,"
            "lastname,lifecyclestage,mobilephone,numemployees,phone,state,website"
        ]
        assert req.headers["authorization"] == f"Bearer {HUBSPOT_TOKEN}"
        lead = (await client.get(f"/v1/leads/{result['lead_id']}", headers=AUTH)).json()
        assert lead["lead"]["email"] == "contact123@acme.example"
        assert lead["lead"]["employees"] == 500
        assert lead["lead"]["attributes"]["hubspot_contact_id"] == "123"
        assert lead["lead"]["source"] == "hubspot"

    async def test_a_retry_of_the_batch_is_the_same_lead(self, client: Client, settings: Settings) -> None:
        first = await hubspot(client, HUBSPOT_BATCH, hubspot_headers(HUBSPOT_BATCH))
        retry_body = HUBSPOT_BATCH.replace(b'"attemptNumber":0', b'"attemptNumber":1')
        again = await hubspot(client, retry_body, hubspot_headers(retry_body))
        assert again.status_code == 200
        assert again.json()["results"][0]["status"] == "replayed"
        assert again.json()["results"][0]["lead_id"] == first.json()["results"][0]["lead_id"]
        assert await count(settings, "SELECT count(*) FROM leads") == 1

    async def test_each_event_of_a_batch_is_its_own_intake(self, client: Client, settings: Settings) -> None:
        def event(n: int, kind: str, object_id: int, **more: str) -> dict[str, Any]:
            return {"eventId": n, "portalId": 62515, "occurredAt": 1564113600000,
                    "subscriptionType": kind, "objectId": object_id, **more}  # fmt: skip

        events = [
            event(10, "contact.creation", 201),
            event(11, "contact.propertyChange", 202, propertyName="jobtitle", propertyValue="CTO"),
            event(12, "contact.propertyChange", 203, propertyName="hs_lead_status", propertyValue="NEW"),
            event(13, "deal.creation", 9),
            event(14, "contact.creation", 404),
        ]
        body = json.dumps(events).encode()
        r = await hubspot(client, body, hubspot_headers(body))
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == [
            "created",
            "created",
            "skipped",
            "skipped",
            "skipped",
        ]
        assert await count(settings, "SELECT count(*) FROM leads") == 2

    async def test_a_crm_api_failure_is_503_so_hubspot_retries(self, client: Client) -> None:
        body = HUBSPOT_BATCH.replace(b'"objectId":123', b'"objectId":500')
        r = await hubspot(client, body, hubspot_headers(body))
        assert r.status_code == 503
        assert r.headers["retry-after"] == "30"

    @pytest.mark.parametrize(
        ("change", "why"),
        [
            ({"x-hubspot-signature-v3": base64.b64encode(b"x" * 32).decode()}, "does not match"),
            ({"x-hubspot-signature-v3": ""}, "missing"),
            ({"x-hubspot-request-timestamp": "not-a-number"}, "not a number"),
        ],
    )
    async def test_a_bad_signature_is_401(
        self, client: Client, settings: Settings, change: dict[str, str], why: str
    ) -> None:
        r = await hubspot(client, HUBSPOT_BATCH, hubspot_headers(HUBSPOT_BATCH) | change)
        assert r.status_code == 401, r.text
        assert why in r.json()["detail"]
        assert await count(settings, "SELECT count(*) FROM leads") == 0

    async def test_a_signature_older_than_5_minutes_is_refused(self, client: Client) -> None:
        r = await hubspot(client, HUBSPOT_BATCH, hubspot_headers(HUBSPOT_BATCH, age=301))
        assert r.status_code == 401
        assert "5 minutes" in r.json()["detail"]
        ok = await hubspot(client, HUBSPOT_BATCH, hubspot_headers(HUBSPOT_BATCH, age=240))
        assert ok.status_code == 200

    async def test_the_signed_uri_is_the_public_one_with_listed_characters_decoded(
        self, client: Client
    ) -> None:
        # HubSpot decodes %3A, %2F, %40, ... in the URI before signing; leadroute must too
        path = "/v1/inbound/hubspot?portal=a%3Ab%40c&x=%2F"
        headers = hubspot_headers(HUBSPOT_BATCH, uri=f"{PUBLIC}/v1/inbound/hubspot?portal=a:b@c&x=/")
        assert (await hubspot(client, HUBSPOT_BATCH, headers, path=path)).status_code == 200
        # signed for another host: refused
        other = hubspot_headers(HUBSPOT_BATCH, uri="https://evil.example/v1/inbound/hubspot")
        assert (await hubspot(client, HUBSPOT_BATCH, other)).status_code == 401

    async def test_an_api_key_does_not_replace_the_signature(self, client: Client) -> None:
        r = await client.post("/v1/inbound/hubspot", content=HUBSPOT_BATCH, headers=AUTH)
        assert r.status_code == 401


# -- Salesforce ---------------------------------------------------------------------------------

# An Outbound Message as Salesforce's outbound messaging WSDL defines it (notifications, one
# Notification with its Id and a Lead sObject of the fields chosen in Setup).
OUTBOUND_MESSAGE = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{ORG_ID}</OrganizationId>
   <ActionId>04k5e000000CaRkAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5e000000KQ2e</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5e000000KQ2e</PartnerUrl>
   <Notification>
    <Id>04l5e00000Gx7QzAAJ</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q5e00000ABCDEFGH</sf:Id>
     <sf:Company>Acme Corporation</sf:Company>
     <sf:Email>jane.doe@acme.example</sf:Email>
     <sf:FirstName>Jane</sf:FirstName>
     <sf:LastName>Doe</sf:LastName>
     <sf:Phone>(415) 555-0142</sf:Phone>
     <sf:Title>VP Sales</sf:Title>
     <sf:Website xsi:nil="true"/>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()

XML = {"content-type": "text/xml; charset=utf-8", "soapaction": '""', "authorization": ""}


def callout_headers(body: bytes, *, age: float = 0, secret: str = CALLOUT_SECRET) -> dict[str, str]:
    """What the Apex snippet of docs/integrations.md sends."""
    timestamp = str(int(time.time() - age))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-leadroute-timestamp": timestamp,
        "x-leadroute-signature": f"v1={digest}",
        "authorization": "",
    }


class TestSalesforce:
    """Outbound Messages (org id checked, SOAP Ack) and signed callouts become leads, once each."""

    async def test_an_outbound_message_becomes_a_lead_and_is_acknowledged(
        self, client: Client, settings: Settings
    ) -> None:
        r = await client.post("/v1/inbound/salesforce", content=OUTBOUND_MESSAGE, headers=XML)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/xml")
        assert b"<Ack>true</Ack>" in r.content
        assert b"notificationsResponse" in r.content
        [row] = await fetch(settings, "SELECT normalized FROM leads")
        assert row["normalized"]["email"] == "jane.doe@acme.example"
        assert row["normalized"]["attributes"] == {
            "salesforce_id": "00Q5e00000ABCDEFGH",
            "salesforce_type": "Lead",
        }
        again = await client.post("/v1/inbound/salesforce", content=OUTBOUND_MESSAGE, headers=XML)
        assert b"<Ack>true</Ack>" in again.content
        assert await count(settings, "SELECT count(*) FROM leads") == 1

    async def test_another_org_is_refused(self, client: Client, settings: Settings) -> None:
        other = OUTBOUND_MESSAGE.replace(ORG_ID.encode(), b"00D000000000001AAA")
        r = await client.post("/v1/inbound/salesforce", content=other, headers=XML)
        assert r.status_code == 401
        assert await count(settings, "SELECT count(*) FROM leads") == 0

    async def test_the_outbound_token_when_set(
        self, settings: Settings, clean: None, overrides: dict[str, Any]
    ) -> None:
        token = "0f9c2b7e5d8a4c1e9b6f3a2d7c8e1f40"
        configured = msgspec.structs.replace(settings, **(overrides | {"salesforce_outbound_token": token}))
        async with authed(create_app(configured)) as client:
            url = "/v1/inbound/salesforce"
            assert (await client.post(url, content=OUTBOUND_MESSAGE, headers=XML)).status_code == 401
            wrong = await client.post(f"{url}?token=nope", content=OUTBOUND_MESSAGE, headers=XML)
            assert wrong.status_code == 401
            right = await client.post(f"{url}?token={token}", content=OUTBOUND_MESSAGE, headers=XML)
            assert b"<Ack>true</Ack>" in right.content

    async def test_xml_entities_are_refused(self, client: Client) -> None:
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>'
        )
        r = await client.post("/v1/inbound/salesforce", content=bomb, headers=XML)
        assert r.status_code == 400

    async def test_a_signed_callout_becomes_leads(self, client: Client, settings: Settings) -> None:
        records = [
            {"attributes": {"type": "Lead", "url": "/services/data/v62.0/sobjects/Lead/00Q5e00000ZYXWVUTS"},
             "Id": "00Q5e00000ZYXWVUTS", "Email": "r.roe@globex.example", "LastName": "Roe",
             "Company": "Globex",
             "LastModifiedDate": "2026-11-23T15:00:00.000+0000"},
            {"attributes": {"type": "Lead"}, "Id": "00Q5e00000NOCONTACT", "LastName": "Nobody"},
        ]  # fmt: skip
        body = json.dumps(records).encode()
        r = await client.post("/v1/inbound/salesforce", content=body, headers=callout_headers(body))
        assert r.status_code == 200, r.text
        first, second = r.json()["results"]
        assert first["status"] == "created"
        assert second["status"] == "refused"  # no email and no phone: that record's answer, not the batch's
        assert second["errors"][0]["field"] == "email"
        again = await client.post("/v1/inbound/salesforce", content=body, headers=callout_headers(body))
        assert again.json()["results"][0]["status"] == "replayed"
        assert await count(settings, "SELECT count(*) FROM leads") == 1

    @pytest.mark.parametrize("fault", ["wrong-secret", "expired", "missing"])
    async def test_a_bad_callout_signature_is_401(self, client: Client, fault: str) -> None:
        body = b'[{"Id": "00Q5e00000ZYXWVUTS", "Email": "r.roe@globex.example"}]'
        headers = callout_headers(body, secret="nope" if fault == "wrong-secret" else CALLOUT_SECRET,
                                  age=301 if fault == "expired" else 0)  # fmt: skip
        if fault == "missing":
            del headers["x-leadroute-signature"]
        r = await client.post("/v1/inbound/salesforce", content=body, headers=headers)
        assert r.status_code == 401, r.text


# -- Standard Webhooks --------------------------------------------------------------------------


def standard_headers(
    body: bytes, msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", *, age: float = 0
) -> dict[str, str]:
    at = datetime.now(UTC) - timedelta(seconds=age)
    signature = Webhook(WEBHOOK_SECRET).sign(msg_id, at, body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "authorization": "",
    }


class TestStandardWebhooks:
    """A source's signed message is one lead (mapped by webhook.yaml); a retry of its id is the same."""

    BODY = json.dumps(
        {"type": "lead.created", "timestamp": "2026-11-23T15:00:00Z",
         "data": {"email": "ann@initech.example", "firstName": "Ann", "companyName": "Initech",
                  "plan": "pro"}}
    ).encode()  # fmt: skip

    async def test_signed_message_becomes_a_lead_once(self, client: Client, settings: Settings) -> None:
        r = await client.post(
            "/v1/inbound/webhook?source=typeform", content=self.BODY, headers=standard_headers(self.BODY)
        )
        assert r.status_code == 201, r.text
        again = await client.post(
            "/v1/inbound/webhook?source=typeform", content=self.BODY, headers=standard_headers(self.BODY)
        )
        assert again.status_code == 200
        assert again.json()["lead_id"] == r.json()["lead_id"]
        [row] = await fetch(settings, "SELECT normalized FROM leads")
        assert row["normalized"]["company"] == "Initech"
        assert row["normalized"]["attributes"] == {"plan": "pro"}

    async def test_a_source_with_its_own_mapping_file_uses_it(
        self, settings: Settings, clean: None, overrides: dict[str, Any], tmp_path: Path
    ) -> None:
        shutil.copy(ROOT / "mappings" / "webhook.yaml", tmp_path / "webhook.yaml")
        (tmp_path / "typeform.yaml").write_text(
            "version: 1\nsource: typeform\nfields:\n  email: answers.work_email\n"
            "attributes:\n  typeform_form: form_id\n"
        )
        body = json.dumps({"form_id": "f1", "answers": {"work_email": "t@initech.example"}}).encode()
        configured = msgspec.structs.replace(settings, **(overrides | {"mappings_path": tmp_path}))
        async with authed(create_app(configured)) as client:
            r = await client.post(
                "/v1/inbound/webhook?source=typeform", content=body, headers=standard_headers(body)
            )
            assert r.status_code == 201, r.text
        [row] = await fetch(settings, "SELECT normalized FROM leads")
        assert row["normalized"]["source"] == "typeform"
        assert row["normalized"]["attributes"] == {"typeform_form": "f1"}

    @pytest.mark.parametrize("fault", ["tampered", "expired", "unknown-source"])
    async def test_bad_signatures_are_401(self, client: Client, settings: Settings, fault: str) -> None:
        headers = standard_headers(self.BODY, age=400 if fault == "expired" else 0)
        body = self.BODY.replace(b"Ann", b"Bob") if fault == "tampered" else self.BODY
        source = "zapier" if fault == "unknown-source" else "typeform"
        r = await client.post(f"/v1/inbound/webhook?source={source}", content=body, headers=headers)
        assert r.status_code == 401, r.text
        assert await count(settings, "SELECT count(*) FROM leads") == 0


# -- forms --------------------------------------------------------------------------------------


async def form_key(client: Client, *origins: str) -> str:
    body = {"name": "website form", "scopes": ["leads:write"], "origins": list(origins)}
    r = await client.post("/v1/keys", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


FORM = {"email": "sam@umbrella.example", "first_name": "Sam", "company": "Umbrella", "message": "Call me"}


class TestForms:
    """A plain HTML form posts with its publishable key in the URL; JSON, or a 303 to the thank-you page."""

    async def test_an_urlencoded_form_becomes_a_lead(self, client: Client, settings: Settings) -> None:
        key = await form_key(client, "https://www.example.com")
        r = await client.post(
            f"/v1/inbound/form/form?key={key}",
            data=FORM,
            headers={"authorization": "", "origin": "https://www.example.com"},
        )
        assert r.status_code == 201, r.text
        assert r.headers["access-control-allow-origin"] == "https://www.example.com"
        [row] = await fetch(settings, "SELECT normalized FROM leads")
        assert row["normalized"]["source"] == "web-form"
        assert row["normalized"]["attributes"] == {"message": "Call me"}

    async def test_multipart_forms_too(self, client: Client, settings: Settings) -> None:
        key = await form_key(client)
        r = await client.post(
            f"/v1/inbound/form/form?key={key}",
            files={"attachment": ("cv.txt", b"hello")},
            data=FORM | {"interests": ["routing", "scoring"]},  # checkboxes: a field sent twice
            headers={"authorization": ""},
        )
        assert r.status_code == 201, r.text
        [row] = await fetch(settings, "SELECT normalized FROM leads")
        assert row["normalized"]["attributes"] == {"message": "Call me", "interests": ["routing", "scoring"]}

    async def test_the_form_is_refused_without_a_key_or_from_another_origin(self, client: Client) -> None:
        no_key = await client.post("/v1/inbound/form/form", data=FORM, headers={"authorization": ""})
        assert no_key.status_code == 401
        key = await form_key(client, "https://www.example.com")
        elsewhere = await client.post(
            f"/v1/inbound/form/form?key={key}",
            data=FORM,
            headers={"authorization": "", "origin": "https://evil.example"},
        )
        assert elsewhere.status_code == 403
        as_json = await client.post(
            f"/v1/inbound/form/form?key={key}", json=FORM, headers={"authorization": ""}
        )
        assert as_json.status_code == 415

    async def test_a_bad_form_names_its_fields(self, client: Client) -> None:
        key = await form_key(client)
        r = await client.post(
            f"/v1/inbound/form/form?key={key}", data={"first_name": "Sam"}, headers={"authorization": ""}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "email"
        unknown = await client.post(
            f"/v1/inbound/form/nope?key={key}", data=FORM, headers={"authorization": ""}
        )
        assert unknown.status_code == 404

    async def test_a_form_asking_for_it_is_sent_to_the_thank_you_page(
        self, settings: Settings, clean: None, overrides: dict[str, Any], tmp_path: Path
    ) -> None:
        text = (ROOT / "mappings" / "form.yaml").read_text()
        (tmp_path / "contact-us.yaml").write_text(
            text.replace(
                "# thank_you_url: https://www.example.com/thanks",
                "thank_you_url: https://www.example.com/thanks",
            )
        )
        configured = msgspec.structs.replace(settings, **(overrides | {"mappings_path": tmp_path}))
        async with authed(create_app(configured)) as client:
            key = await form_key(client)
            r = await client.post(
                f"/v1/inbound/form/contact-us?key={key}",
                data=FORM | {"_redirect": "1"},
                headers={"authorization": ""},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text
            assert r.headers["location"] == "https://www.example.com/thanks"
            plain = await client.post(
                f"/v1/inbound/form/contact-us?key={key}", data=FORM | {"email": "b@umbrella.example"},
                headers={"authorization": ""},
            )  # fmt: skip
            assert plain.status_code == 201


class TestServed:
    """The same vendor requests against a real `leadroute serve` (uvicorn), over a real socket."""

    def test_hubspot_and_salesforce_payloads_become_leads(
        self, settings: Settings, clean: None, crm: Receiver, tmp_path: Path
    ) -> None:
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        served = Served(
            tmp_path / "serve.log",
            settings,
            port=port,
            rules_path=str(ROOT / "rules"),
            mappings_path=str(ROOT / "mappings"),
            public_url=public,
            hubspot_client_secret=HUBSPOT_SECRET,
            hubspot_token=HUBSPOT_TOKEN,
            hubspot_base_url=crm.url,
            salesforce_org_id=ORG_ID,
            db_pool_min="1",
            db_pool_max="4",
            log_level="WARNING",
        )
        try:
            served.wait_ready()
            signed = hubspot_headers(HUBSPOT_BATCH, uri=f"{public}/v1/inbound/hubspot")
            r = httpx.post(f"{public}/v1/inbound/hubspot", content=HUBSPOT_BATCH, headers=signed, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["status"] == "created"
            sf = httpx.post(
                f"{public}/v1/inbound/salesforce", content=OUTBOUND_MESSAGE, headers=XML, timeout=30
            )
            assert sf.status_code == 200, sf.text
            assert b"<Ack>true</Ack>" in sf.content
            leads = httpx.get(
                f"{public}/v1/leads/{r.json()['results'][0]['lead_id']}", headers=AUTH, timeout=30
            )
            assert leads.json()["lead"]["attributes"]["hubspot_contact_id"] == "123"
        finally:
            served.stop()


# -- outcomes from the CRMs ---------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hubspot_change(
    event_id: int, object_id: int, name: str, value: str, *, attempt: int = 0
) -> dict[str, Any]:
    """A contact.propertyChange event as HubSpot's webhooks documentation shows one."""
    return {
        "eventId": event_id, "subscriptionId": 12346, "portalId": 62515, "appId": 54321,
        "occurredAt": now_ms(), "subscriptionType": "contact.propertyChange", "attemptNumber": attempt,
        "objectId": object_id, "changeSource": "CRM", "propertyName": name, "propertyValue": value,
    }  # fmt: skip


async def outcome_events(settings: Settings) -> list[Any]:
    rows = await fetch(
        settings,
        "SELECT lead_id, idempotency_key, payload FROM lead_events WHERE kind = 'lead.outcome' ORDER BY id",
    )
    return [(str(r["lead_id"]), r["idempotency_key"], r["payload"]) for r in rows]


async def calibration(client: Client) -> Any:
    r = await client.get("/v1/reports/calibration", headers=AUTH, params={"days": "1"})
    assert r.status_code == 200, r.text
    return r.json()


def outbound_message(notification: str, sobject: str, fields: dict[str, str]) -> bytes:
    """One Notification of an Outbound Message, as the outbound messaging WSDL defines it."""
    values = "".join(f"<sf:{name}>{value}</sf:{name}>" for name, value in fields.items())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{ORG_ID}</OrganizationId>
   <ActionId>04k5e000000CaRkAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5e000000KQ2e</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5e000000KQ2e</PartnerUrl>
   <Notification>
    <Id>{notification}</Id>
    <sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{values}</sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


OPPORTUNITY = "/services/data/v62.0/sobjects/Opportunity"


class TestOutcomesFromHubSpot:
    """A lifecycle stage change the mapping names is an outcome of the contact's lead, once per eventId."""

    async def test_a_customer_is_won_once_and_the_report_counts_it(
        self, client: Client, settings: Settings, crm: Receiver
    ) -> None:
        created = await hubspot(client, HUBSPOT_BATCH, hubspot_headers(HUBSPOT_BATCH))
        lead_id = created.json()["results"][0]["lead_id"]
        body = json.dumps(
            [
                hubspot_change(7001, 123, "lifecyclestage", "opportunity"),
                hubspot_change(7002, 123, "lifecyclestage", "customer"),
                hubspot_change(7003, 999, "lifecyclestage", "customer"),
            ]
        ).encode()
        r = await hubspot(client, body, hubspot_headers(body))
        assert r.status_code == 200, r.text
        converted, won, unknown = r.json()["results"]
        assert converted == {"item": "7001", "status": "recorded", "lead_id": lead_id, "outcome": "converted"}
        assert won == {"item": "7002", "status": "recorded", "lead_id": lead_id, "outcome": "won"}
        assert unknown["status"] == "skipped"
        assert unknown["reason"] == "no lead matches the record (by hubspot_contact_id)"
        assert len(crm.requests) == 1  # the creation's contact read; an outcome event needs none
        # HubSpot retries the batch (attemptNumber 1): recorded once
        retry = body.replace(b'"attemptNumber": 0', b'"attemptNumber": 1')
        again = await hubspot(client, retry, hubspot_headers(retry))
        assert [x["status"] for x in again.json()["results"]] == ["replayed", "replayed", "skipped"]
        events = await outcome_events(settings)
        assert [(lead, key, p["outcome"]) for lead, key, p in events] == [
            (lead_id, "hubspot:62515:7001", "converted"),
            (lead_id, "hubspot:62515:7002", "won"),
        ]
        assert await count(settings, "SELECT count(*) FROM leads") == 1
        report = await calibration(client)
        assert report["with_outcome"] == 1
        assert (report["converted"]["successes"], report["won"]["successes"]) == (1, 1)

    async def test_other_stages_stay_contact_changes(self, client: Client, crm: Receiver) -> None:
        await hubspot(client, HUBSPOT_BATCH, hubspot_headers(HUBSPOT_BATCH))
        body = json.dumps([hubspot_change(7010, 123, "lifecyclestage", "salesqualifiedlead")]).encode()
        [result] = (await hubspot(client, body, hubspot_headers(body))).json()["results"]
        assert result["status"] == "merged"  # a property the mapping reads: the lead is updated
        assert len(crm.requests) == 2


class TestOutcomesFromSalesforce:
    """A converted Lead and a closed Opportunity are outcomes of their lead, once per change."""

    async def test_a_converted_lead_from_an_outbound_message(
        self, client: Client, settings: Settings
    ) -> None:
        await client.post("/v1/inbound/salesforce", content=OUTBOUND_MESSAGE, headers=XML)
        [lead] = await fetch(settings, "SELECT id FROM leads")
        converted = outbound_message(
            "04l5e00000Gx7R0AAJ",
            "Lead",
            {
                "Id": "00Q5e00000ABCDEFGH", "Email": "jane.doe@acme.example", "IsConverted": "true",
                "Status": "Closed - Converted", "ConvertedOpportunityId": "0065e00000OPPWON1",
                "LastModifiedDate": iso(datetime.now(UTC)),
            },
        )  # fmt: skip
        for _ in range(2):  # Salesforce resends a message it had no Ack for
            r = await client.post("/v1/inbound/salesforce", content=converted, headers=XML)
            assert r.status_code == 200, r.text
            assert b"<Ack>true</Ack>" in r.content
        [(lead_id, key, payload)] = await outcome_events(settings)
        assert lead_id == str(lead["id"])
        assert key == f"salesforce:{ORG_ID}:04l5e00000Gx7R0AAJ"
        assert payload["outcome"] == "converted"
        assert await count(settings, "SELECT count(*) FROM leads") == 1  # not taken as a lead again
        report = await calibration(client)
        assert (report["converted"]["successes"], report["won"]["successes"]) == (1, 0)

    async def test_a_lead_posted_elsewhere_is_found_by_its_email(
        self, client: Client, settings: Settings
    ) -> None:
        posted = await client.post("/v1/leads", json={"email": "sam.lee@initech.example", "title": "CTO"})
        assert posted.status_code == 201, posted.text
        rejected = outbound_message(
            "04l5e00000Gx7R1AAJ",
            "Lead",
            {
                "Id": "00Q5e00000SAMLEEAA", "Email": "Sam.Lee@Initech.example",
                "IsConverted": "false", "Status": "Closed - Not Converted",
                "LastModifiedDate": iso(datetime.now(UTC)),
            },
        )  # fmt: skip
        r = await client.post("/v1/inbound/salesforce", content=rejected, headers=XML)
        assert b"<Ack>true</Ack>" in r.content
        [(lead_id, _, payload)] = await outcome_events(settings)
        assert lead_id == posted.json()["lead_id"]
        assert (payload["outcome"], payload.get("owner")) == (
            "disqualified_by_sales",
            posted.json().get("owner"),
        )
        assert await count(settings, "SELECT count(*) FROM leads") == 1

    async def test_opportunities_from_a_signed_callout(self, client: Client, settings: Settings) -> None:
        contact = [
            {"attributes": {"type": "Contact"}, "Id": "0035e00000QRSTUVWX", "Email": "r.roe@globex.example",
             "LastName": "Roe", "Account": {"Name": "Globex"}},
        ]  # fmt: skip
        body = json.dumps(contact).encode()
        created = await client.post("/v1/inbound/salesforce", content=body, headers=callout_headers(body))
        lead_id = created.json()["results"][0]["lead_id"]
        changed, in_two_days = iso(datetime.now(UTC)), iso(datetime.now(UTC) + timedelta(days=2))
        opportunities = [
            {"attributes": {"type": "Opportunity", "url": f"{OPPORTUNITY}/0065e00000OPPWON1"},
             "Id": "0065e00000OPPWON1", "ContactId": "0035e00000QRSTUVWX", "StageName": "Closed Won",
             "IsClosed": True, "IsWon": True, "Amount": 48000.0, "CurrencyIsoCode": "EUR",
             "CloseDate": datetime.now(UTC).date().isoformat(), "LastModifiedDate": changed},
            {"attributes": {"type": "Opportunity"}, "Id": "0065e00000OPPOPEN",
             "ContactId": "0035e00000QRSTUVWX",
             "IsClosed": False, "IsWon": False, "Amount": 9000.0, "LastModifiedDate": changed},
            {"attributes": {"type": "Opportunity"}, "Id": "0065e00000OPPELSE",
             "ContactId": "0035e00000UNKNOWN",
             "IsClosed": True, "IsWon": False, "LastModifiedDate": changed},
            {"attributes": {"type": "Opportunity"}, "Id": "0065e00000OPPFUTR",
             "ContactId": "0035e00000QRSTUVWX",
             "IsClosed": True, "IsWon": False, "LastModifiedDate": in_two_days},
        ]  # fmt: skip
        body = json.dumps({"records": opportunities}).encode()
        r = await client.post("/v1/inbound/salesforce", content=body, headers=callout_headers(body))
        assert r.status_code == 200, r.text
        won, still_open, unknown, future = r.json()["results"]
        assert won == {
            "item": "0065e00000OPPWON1",
            "status": "recorded",
            "lead_id": lead_id,
            "outcome": "won",
        }
        assert still_open == {
            "item": "0065e00000OPPOPEN",
            "status": "skipped",
            "reason": "not an outcome (outcomes rule 5)",
        }
        assert unknown["status"] == "skipped"
        assert unknown["reason"] == "no lead matches the record (by salesforce_id, salesforce_lead_id)"
        assert future["status"] == "refused"  # the vendor gets 200: retrying cannot fix it
        assert future["errors"][0]["field"] == "at"
        again = await client.post("/v1/inbound/salesforce", content=body, headers=callout_headers(body))
        assert again.json()["results"][0]["status"] == "replayed"
        [(lead, key, payload)] = await outcome_events(settings)
        assert (lead, key) == (lead_id, f"salesforce:0065e00000OPPWON1:{changed}")
        assert (payload["outcome"], payload["amount"], payload["currency"]) == ("won", 48000.0, "EUR")
        assert await count(settings, "SELECT count(*) FROM leads") == 1
        report = await calibration(client)
        assert report["won"]["successes"] == 1
        assert report["revenue"] == {"EUR": 48000.0}
        assert report["currency"] == "EUR"
