"""Inbound: leads as CRMs and forms send them, turned into lead bodies by versioned mapping files.

- :mod:`._format`: the mapping file format, and applying a mapping to a payload (pure).
- :mod:`._load`: reading mapping files, with file:line problems and the tests inside run.
- :mod:`._store`: mapping versions in PostgreSQL; which version of each mapping runs.
- :mod:`._signatures`: HubSpot v3, our Salesforce callout HMAC, Standard Webhooks.
- :mod:`._intake`: a mapped payload into the intake, idempotent on the vendor's event identity.
- :mod:`._hubspot`, :mod:`._salesforce`: the vendors' payload shapes.

See docs/intake.md ("Inbound routes and mapping files") and docs/integrations.md.
"""

from leadroute.inbound._format import LEAD_FIELDS, TRANSFORMS, Mapping, MappingFile, canonical_sha256
from leadroute.inbound._load import NAME_PATTERN, MappingFileError, load_mapping, load_mappings, parse_mapping
from leadroute.inbound._store import (
    ActiveMappings,
    Inbound,
    MappingVersionConflict,
    NoGoodMapping,
    start_mappings,
    stored_conflict,
)

__all__ = [
    "LEAD_FIELDS",
    "NAME_PATTERN",
    "TRANSFORMS",
    "ActiveMappings",
    "Inbound",
    "Mapping",
    "MappingFile",
    "MappingFileError",
    "MappingVersionConflict",
    "NoGoodMapping",
    "canonical_sha256",
    "load_mapping",
    "load_mappings",
    "parse_mapping",
    "start_mappings",
    "stored_conflict",
]
