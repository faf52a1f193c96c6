"""FHIR's canonical JSON of a validated model, without fhir.resources' serialiser (ADR 0025).

fhir.resources writes a model through a pydantic "wrap" serialiser implemented in Python for every
element (`FHIRAbstractModel._fhir_iter`): each nested element is dumped by its own `model_dump`
call into an OrderedDict, and that costs about 2 ms for a CarePlan, most of a create's CPU. This
module walks the same validated model with the same rules, from a per-class table built once,
into plain dicts and lists, and has pydantic's compiled serialiser (`pydantic_core.to_json`, the
engine that formats fhir.resources' output too) write the bytes:

- elements in the order of the specification (`elements_sequence`), under their JSON names;
  `resourceType` first for resources (contained ones and Bundle entries included);
- absent elements and empty lists left out; a primitive's extension (`_birthDate`) right after
  the primitive, primitive lists keeping their `null` placeholders;
- primitive values converted by fhir.resources' own `_serialize_primitive_value` where it does
  more than pass them through (decimals, base64 bytes, UUIDs), so numbers are written exactly as
  fhir.resources writes them; dates, times and instants by pydantic as before.

`tests/unit/test_fhir_json.py` holds the output byte-identical to fhir.resources' for the HL7
example resources, the project's fixtures and generated resources (hypothesis).

The validation is unchanged: only models that passed fhir.resources' validation get here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pydantic_core
from fhir_core.fhirabstractmodel import FHIR_COMMENTS_FIELD_NAME, FHIRAbstractModel
from fhir_core.utils import is_primitive_type

#: Primitive values written as they are (pydantic formats the dates and times).
_PLAIN = (str, bool, int, float, dt.datetime, dt.date, dt.time)


@dataclass(frozen=True, slots=True)
class _Element:
    field: str  # the model's attribute
    name: str  # the JSON property
    primitive: bool
    ext_field: str | None  # the primitive's extension attribute (`birthDate__ext`), if any
    ext_name: str


@dataclass(frozen=True, slots=True)
class _Shape:
    resource_type: str | None  # set for resources: `resourceType` comes first
    elements: tuple[_Element, ...]
    #: JSON property names in canonical order (primitive extensions included).
    order: tuple[str, ...]


_SHAPES: dict[type[Any], _Shape] = {}


def _shape(cls: type[Any]) -> _Shape:
    shape = _SHAPES.get(cls)
    if shape is None:
        shape = _SHAPES[cls] = _build_shape(cls)
    return shape


def _build_shape(cls: type[Any]) -> _Shape:
    fields = cls.model_fields
    aliases = cls.get_alias_mapping()
    elements = []
    order: list[str] = []
    for prop in cls.elements_sequence():
        key = aliases[prop]
        info = fields[key]
        primitive = is_primitive_type(info)
        ext_field = f"{key}__ext" if primitive and f"{key}__ext" in fields else None
        ext_name = (fields[ext_field].alias or ext_field) if ext_field else ""
        name = info.alias or key
        elements.append(_Element(key, name, primitive, ext_field, ext_name))
        order.append(name)
        if ext_field:
            order.append(ext_name)
    resource_type = cls.__resource_type__ if cls.has_resource_base() else None
    return _Shape(resource_type, tuple(elements), tuple(order))


def canonical(model: Any) -> dict[str, Any]:
    """The model as FHIR's canonical JSON object (dicts, lists and JSON-ready leaves; dates and
    times still as `datetime` values, for `dumps`)."""
    shape = _shape(type(model))
    values = model.__dict__
    out: dict[str, Any] = {}
    if shape.resource_type is not None:
        out["resourceType"] = shape.resource_type
    for element in shape.elements:
        value = values.get(element.field)
        if value is not None:
            if element.primitive:
                value = _primitive(model, element, value)
            elif isinstance(value, list):
                value = [None if item is None else _complex(item) for item in value]
            else:
                value = _complex(value)
            if not (isinstance(value, list) and not value):
                out[element.name] = value
        if element.ext_field is not None:
            ext = values.get(element.ext_field)
            if ext is not None:
                if isinstance(ext, list):
                    ext = [None if item is None else _complex(item) for item in ext]
                else:
                    ext = _complex(ext)
                if ext:
                    out[element.ext_name] = ext
    comments = values.get(FHIR_COMMENTS_FIELD_NAME)
    if comments is not None and not model.__fhir_serialization_exclude_comment__:
        out[FHIR_COMMENTS_FIELD_NAME] = comments
    return out


class Unsupported(Exception):
    """A value this module does not know how to write (the caller falls back to fhir.resources)."""


def _complex(value: Any) -> dict[str, Any]:
    if not isinstance(value, FHIRAbstractModel):
        raise Unsupported(type(value).__name__)
    return canonical(value)


def _primitive(model: Any, element: _Element, value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list) and all(item is None or isinstance(item, _PLAIN) for item in value):
        return value
    # Decimals (an int when integral without exponent, else a float), base64 bytes, UUIDs:
    # exactly as fhir.resources converts them.
    info = type(model).model_fields[element.field]
    return FHIRAbstractModel._serialize_primitive_value(model, value, info)


def dumps(document: dict[str, Any]) -> str:
    """A canonical object as compact JSON text, formatted by pydantic's serialiser."""
    return pydantic_core.to_json(document).decode()


def to_json(model: Any) -> str:
    """FHIR's canonical JSON of a validated model: what fhir.resources' `model_dump_json(
    exclude_none=True, by_alias=True)` writes, byte for byte."""
    try:
        return dumps(canonical(model))
    except Unsupported:
        return str(model.model_dump_json(exclude_none=True, by_alias=True))


def reorder(document: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
    """`document` (a canonical object of `cls` whose properties were changed) in canonical order."""
    shape = _shape(cls)
    head = {"resourceType": document["resourceType"]} if "resourceType" in document else {}
    body = {name: document[name] for name in shape.order if name in document}
    comments = (
        {FHIR_COMMENTS_FIELD_NAME: document[FHIR_COMMENTS_FIELD_NAME]}
        if FHIR_COMMENTS_FIELD_NAME in document
        else {}
    )
    return {**head, **body, **comments}
