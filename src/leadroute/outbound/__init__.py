"""Outbound: decisions leave leadroute. Webhooks (Standard Webhooks 1.0) to the endpoints admins
register, and owner write-back to HubSpot and Salesforce, all driven by one relay per instance
that reads the lead's event log.

- :mod:`._payload`   what a webhook says (and what it never says), its ``webhook-id``
- :mod:`._endpoints` endpoints and connectors, secrets and rotation, redelivery, the delivery log
- :mod:`._fanout`    the log, in order and without gaps, to one delivery per endpoint
- :mod:`._relay`     claim, send, settle: retries, dead letters, 410, per-lead order, leases
- :mod:`._send`      one signed webhook, the SSRF guard, judging an answer
- :mod:`._crm`       the HubSpot and Salesforce connectors

See ``docs/integrations.md`` for setting each up and verifying signatures.
"""

from leadroute.outbound._endpoints import (
    CONNECTORS,
    Attempt,
    ConnectorReadOnly,
    Delivery,
    Endpoint,
    EndpointSecret,
    InvalidWebhook,
    NewEndpoint,
    attempts,
    create_webhook,
    delete_webhook,
    deliveries,
    get_endpoint,
    list_endpoints,
    redeliver,
    rotate_secret,
    update_webhook,
)
from leadroute.outbound._payload import CRM_EVENTS, EVENT_TYPES, EventType, webhook_id
from leadroute.outbound._relay import BACKOFF, Relay, relay

__all__ = [
    "BACKOFF",
    "CONNECTORS",
    "CRM_EVENTS",
    "EVENT_TYPES",
    "Attempt",
    "ConnectorReadOnly",
    "Delivery",
    "Endpoint",
    "EndpointSecret",
    "EventType",
    "InvalidWebhook",
    "NewEndpoint",
    "Relay",
    "attempts",
    "create_webhook",
    "delete_webhook",
    "deliveries",
    "get_endpoint",
    "list_endpoints",
    "redeliver",
    "relay",
    "rotate_secret",
    "update_webhook",
    "webhook_id",
]
