"""Request bodies are strict JSON (no "5" for 5, no "yes" for true), yet every enum field takes its JSON value.

Strict mode wants enum instances where FastAPI validates decoded JSON, so each enum field must be marked
JsonEnum (schemas.py); a field that is not refuses its own documented values. This finds such a field by looking.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from haltless.server import schemas
from haltless.server.schemas.base import StrictBody


def _bodies() -> list[type[BaseModel]]:
    """Every request body of every resource's module in haltless.server.schemas (a new module is found too)."""
    found: list[type[BaseModel]] = []
    for info in pkgutil.iter_modules(schemas.__path__):
        module = importlib.import_module(f"{schemas.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, StrictBody)
                and value is not StrictBody
                and value not in found
            ):
                found.append(value)
    return found


def _enum_of(annotation: Any) -> type[enum.Enum] | None:
    """The enum type inside an annotation (Optional, Annotated and unions looked through), if any."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    for arg in typing.get_args(annotation):
        found = _enum_of(arg)
        if found is not None:
            return found
    return None


def _is_list(annotation: Any) -> bool:
    """Whether the field holds a list (of the enum), Optional looked through."""
    if typing.get_origin(annotation) is list:
        return True
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(
        _is_list(arg) for arg in typing.get_args(annotation)
    )


@pytest.mark.parametrize("body", _bodies(), ids=lambda body: body.__name__)
def test_every_enum_field_of_a_body_takes_its_json_values(body: type[BaseModel]) -> None:
    for name, field in body.model_fields.items():
        kind = _enum_of(field.annotation)
        if kind is None:
            continue
        for member in kind:
            try:
                value = [member.value] if _is_list(field.annotation) else member.value
                body.__pydantic_validator__.validate_assignment(body.model_construct(), name, value)
            except ValidationError as exc:
                pytest.fail(f"{body.__name__}.{name} refuses {member.value!r}: mark it JsonEnum ({exc})")
