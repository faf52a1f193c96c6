"""`_summary`: the summary elements of a resource type, read from the R4 model definitions."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from iopcare.gateway.errors import http_error
from iopcare.kit import fhir

ALWAYS = frozenset({"resourceType", "id", "meta", "implicitRules"})
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}


@lru_cache(maxsize=64)
def summary_elements(resource_type: str) -> frozenset[str]:
    """The top-level elements FHIR marks as summary (isSummary) for a resource type."""
    try:
        cls = fhir.model_class(resource_type)
    except KeyError:
        return ALWAYS
    names = set(ALWAYS)
    for name, info in cls.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("summary_element_property"):
            names.add(info.alias or name)
    return frozenset(names)


@lru_cache(maxsize=64)
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """The top-level elements a resource type requires (min 1): `_elements` keeps them, as FHIR
    asks of servers, so a subsetted resource still validates."""
    try:
        cls = fhir.model_class(resource_type)
    except KeyError:
        return frozenset()
    names = set()
    for name, info in cls.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if info.is_required() or extra.get("element_required"):
            names.add(info.alias or name)
    return frozenset(names)


def summarise(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """The resource as `_summary=mode` asks (`true`, `text`, `data`, `false`)."""
    if mode == "false":
        return resource
    if mode == "true":
        keep = summary_elements(str(resource.get("resourceType", "")))
    elif mode == "text":
        keep = ALWAYS | {"text"}
    elif mode == "data":
        keep = frozenset(k for k in resource if k != "text")
    else:
        raise http_error(400, "value", f"_summary={mode[:20]!r} is not supported", "_summary")
    result = {
        k: v for k, v in resource.items() if k in keep or (k.startswith("_") and k[1:] in keep)
    }
    if len(result) != len(resource):
        meta = dict(result.get("meta", {}))
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        result["meta"] = meta
    return result


def elements(resource: dict[str, Any], wanted: str) -> dict[str, Any]:
    """`_elements=a,b`: the listed top-level elements (and resourceType, id, meta, and the
    elements the type requires), SUBSETTED."""
    keep = (
        ALWAYS
        | mandatory_elements(str(resource.get("resourceType", "")))
        | {name.strip() for name in wanted.split(",") if name.strip()}
    )
    result = {
        k: v for k, v in resource.items() if k in keep or (k.startswith("_") and k[1:] in keep)
    }
    meta = dict(result.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    result["meta"] = meta
    return result


def reshapes(query: dict[str, str]) -> bool:
    return query.get("_summary", "false") != "false" or bool(query.get("_elements"))


def shape(resource: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """The resource as `_summary` and `_elements` ask."""
    result = summarise(resource, query.get("_summary", "false"))
    if query.get("_elements"):
        result = elements(result, query["_elements"])
    return result
