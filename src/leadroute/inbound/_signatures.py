"""Who sent it: the signatures of the inbound routes (pure: bytes, headers, secrets, the time).

- HubSpot, signature v3 (developers.hubspot.com, "Validating requests"): ``X-HubSpot-Signature-v3``
  is base64(HMAC-SHA256(client secret, method + URI + body + X-HubSpot-Request-Timestamp)); the
  timestamp (milliseconds) must be at most 5 minutes old; in the URI, the characters of
  :data:`HUBSPOT_DECODED` are URL-decoded first (not the ``?`` that starts the query).
- Salesforce callouts (Flow or Apex), our own scheme: ``X-Leadroute-Timestamp: <unix seconds>`` and
  ``X-Leadroute-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>``, 5 minutes.
  (Outbound Messages cannot sign: they are checked by their OrganizationId, in ``_salesforce``.)
- Standard Webhooks 1.0 (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), verified
  by the reference ``standardwebhooks`` library, the one our outbound webhooks sign with.

Every failure is :class:`BadSignature` (401); its message says what was wrong, never the secret.
Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from leadroute.errors import NotAuthenticated

__all__ = [
    "HUBSPOT_DECODED",
    "TOLERANCE_SECONDS",
    "BadSignature",
    "hubspot_signature",
    "hubspot_uri",
    "leadroute_signature",
    "verify_hubspot",
    "verify_leadroute",
    "verify_standard",
]

TOLERANCE_SECONDS = 300
"""How old (or how far in the future) a signed request's timestamp may be: 5 minutes."""

HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
"""The URL-encoded characters HubSpot's v3 instructions decode in the request URI, and only those."""
_ENCODED = re.compile("|".join(HUBSPOT_DECODED), re.IGNORECASE)


class BadSignature(NotAuthenticated):
    """The request is not signed as its route requires: 401, naming what was wrong."""

    kind = "bad-signature"
    title = "The request signature is missing, wrong or expired"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, error=None)
        self.headers = None  # no WWW-Authenticate: a key would not help here


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot's v3 signature covers it: the listed characters decoded."""
    return _ENCODED.sub(lambda m: HUBSPOT_DECODED[m[0].upper()], uri)


def hubspot_signature(secret: str, *, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """What HubSpot sends in ``X-HubSpot-Signature-v3`` for this request (tests sign with it too)."""
    message = method.encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _fresh(timestamp: str | None, *, now: float, scale: float, header: str) -> None:
    if not timestamp:
        raise BadSignature(f"the {header} header is missing")
    try:
        at = int(timestamp) / scale
    except ValueError:
        raise BadSignature(f"the {header} header is not a number") from None
    if abs(now - at) > TOLERANCE_SECONDS:
        raise BadSignature(f"the {header} is more than 5 minutes away from now: a replay, or a clock to fix")


def verify_hubspot(
    secret: str,
    *,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
) -> None:
    """Raise :class:`BadSignature` unless ``signature`` is HubSpot's v3 signature of this request."""
    if not signature:
        raise BadSignature("the X-HubSpot-Signature-v3 header is missing")
    _fresh(timestamp, now=now, scale=1000, header="X-HubSpot-Request-Timestamp")
    assert timestamp is not None
    expected = hubspot_signature(secret, method=method, uri=uri, body=body, timestamp=timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignature(
            "the X-HubSpot-Signature-v3 does not match this request (check the app's client secret)"
        )


def leadroute_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Leadroute-Signature`` value of a Salesforce callout: ``v1=<hex>``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify_leadroute(
    secret: str, body: bytes, signature: str | None, timestamp: str | None, *, now: float
) -> None:
    """Raise :class:`BadSignature` unless the callout carries our HMAC of its timestamp and body."""
    if not signature:
        raise BadSignature("the X-Leadroute-Signature header is missing")
    _fresh(timestamp, now=now, scale=1, header="X-Leadroute-Timestamp")
    assert timestamp is not None
    expected = leadroute_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise BadSignature("the X-Leadroute-Signature does not match this request (check the shared secret)")


def verify_standard(secret: str, body: bytes, headers: dict[str, str]) -> None:
    """Raise :class:`BadSignature` unless Standard Webhooks headers sign ``body`` with ``secret``
    (a ``whsec_`` base64 secret, as the sender was given)."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError as exc:
        raise BadSignature(f"Standard Webhooks signature refused: {exc}") from None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadSignature("Standard Webhooks headers are malformed") from None
