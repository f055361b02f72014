"""The OpenAPI document's one addition to Litestar's: a Struct that refuses unknown keys says so.

Litestar documents a msgspec Struct as an object with its fields, but not that
``forbid_unknown_fields`` (on for every body leadroute takes, see :mod:`leadroute.structs`) makes
an unknown key a 400. Without ``additionalProperties: false`` a client generator, or a schema
fuzzer, believes extra keys are fine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Schema
    from litestar.typing import FieldDefinition

__all__ = ["StrictStructSchemaPlugin"]


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's own Struct schema, plus ``additionalProperties: false`` where unknown keys are refused.

    Registered as an app plugin, it comes before Litestar's (which it extends: a private class,
    so a Litestar upgrade may move it; the import fails loudly if it does).
    """

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False  # the registered component, which refs point at
        return schema
