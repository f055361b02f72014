"""Request bodies parsed by the domain's own parser, and documented as the Struct they become.

A few routes parse their JSON body themselves (``leadroute.replay`` for replay and simulate,
``leadroute.rulesets.admin`` for rollback): their errors name the field with the status those
routes have always answered (422 for a field out of range), where Litestar's own parsing would
answer 400. :func:`parsed_body` makes a DTO that hands the raw bytes to that parser and tells the
OpenAPI document the body is the parser's Struct, so ``/schema/openapi.json`` still shows it.
A route using one passes ``return_dto=None`` (its answer is encoded as usual).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from litestar.dto import AbstractDTO, DTOConfig
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto import DTOFieldDefinition
    from litestar.openapi.spec import Reference, Schema

__all__ = ["parsed_body"]

T = TypeVar("T")


class _ParsedBody(AbstractDTO[T], Generic[T]):
    """A DTO with no field mapping of its own: ``parse`` turns the body into ``model_type``."""

    parse: ClassVar[Callable[[bytes], Any]]

    def decode_bytes(self, value: bytes) -> Any:
        return type(self).parse(value)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        raise NotImplementedError("a parsed body is JSON, never a form")

    @classmethod
    def create_for_field_definition(cls, *args: Any, **kwargs: Any) -> None:
        """Nothing to build: the parser does the decoding."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(FieldDefinition.from_annotation(cls.model_type))

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False


def parsed_body(model: type[T], parse: Callable[[bytes], T]) -> type[AbstractDTO[T]]:
    """A ``dto=`` for a route whose ``data: model`` is ``parse(body)``; documented as ``model``."""
    namespace = {"model_type": model, "config": DTOConfig(), "parse": staticmethod(parse)}
    return type(f"{model.__name__}Body", (_ParsedBody,), namespace)
