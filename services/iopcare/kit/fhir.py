"""The one place iopcare imports FHIR models from.

iopcare speaks FHIR R4 (4.0.1). fhir.resources ships R5 models by default and R4B models in a
subpackage; for the resources we exchange (CarePlan, CareTeam, Goal, Appointment, Schedule, Slot,
Communication, DocumentReference, Patient, Encounter, ServiceRequest, Bundle, ...) R4B and R4 do
not differ, so we validate with the R4B models (docs/decisions/0002-fhir-r4b-models.md). Importing
`fhir.resources` anywhere else is a bug: it would silently validate against R5.

Parsing is defensive because every edge (REST, gRPC, Kafka) hands us bytes from someone else:
size is checked before anything is decoded, duplicate keys and invalid UTF-8 are refused instead
of silently picking one reading, and nesting depth is bounded.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from pydantic import ValidationError

from iopcare.kit import fhir_json
from iopcare.kit.errors import FieldViolation, InvalidArgument, ResourceExhausted

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"
MEDIA_TYPE_WITH_VERSION = "application/fhir+json; fhirVersion=4.0"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64

#: Resource types that exist in R4B (4.3) but not in R4 (4.0.1). The R4B models would accept them,
#: so they are refused explicitly: an R4 client must never receive one from us, and we must never
#: store one an R4 server could not read back.
R4B_ONLY_TYPES = frozenset(
    {
        "AdministrableProductDefinition",
        "Citation",
        "ClinicalUseDefinition",
        "EvidenceReport",
        "Ingredient",
        "ManufacturedItemDefinition",
        "MedicinalProductDefinition",
        "NutritionProduct",
        "PackagedProductDefinition",
        "RegulatedAuthorization",
        "SubscriptionStatus",
        "SubscriptionTopic",
    }
)

#: A parsed FHIR resource. The models are typed per resource type, but code reading elements
#: works on whichever type it was handed, so the alias is deliberately loose.
Resource: TypeAlias = Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: what is wrong and where (a FHIRPath-like expression)."""

    severity: str
    code: str
    diagnostics: str
    expression: str | None = None

    def as_violation(self, prefix: str = "") -> FieldViolation:
        path = self.expression or ""
        return FieldViolation(f"{prefix}{path}" if path else prefix.rstrip("."), self.diagnostics)


class FhirError(InvalidArgument):
    """A document that is not a valid FHIR R4 resource; `issues` says every reason found."""

    reason = "INVALID_FHIR"

    def __init__(self, message: str, issues: list[Issue], field_prefix: str = "") -> None:
        super().__init__(message, [issue.as_violation(field_prefix) for issue in issues])
        self.issues = issues


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # JSON parsers disagree on which duplicate wins; FHIR forbids them (JSON format §2.6.2).
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _check_shape(value: Any, limit: int) -> str | None:
    """Why the decoded document is not acceptable FHIR R4 JSON, or None: too deep, a null or
    empty property, a NUL character, an R4B-only resource type at any depth."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if depth > limit:
            return f"JSON nested deeper than {limit} levels"
        if isinstance(item, str):
            if "\x00" in item:
                return f"a NUL character is not allowed (in {path.rstrip('.') or 'the document'})"
        elif isinstance(item, dict):
            if "\x00" in "".join(item):
                return "a NUL character is not allowed in a property name"
            for key, child in item.items():
                if child is None:
                    # FHIR JSON §2.6.2: null is only allowed inside arrays (to align primitive
                    # extensions), never as a property value.
                    return f"null is not allowed as the value of {path}{key}"
                if child in ("", [], {}):
                    # FHIR JSON: properties are left out, never present and empty (§2.6.2).
                    return f"{path}{key} is empty; leave the property out instead"
                if key == "resourceType" and child in R4B_ONLY_TYPES and path:
                    # Contained resources and Bundle entries too: an R4 reader cannot parse them.
                    return f"{child} is not an R4 resource type (in {path.rstrip('.') or 'root'})"
                stack.append((child, depth + 1, f"{path}{key}."))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, path) for child in item)
    return None


def load_json(raw: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES, field: str = "") -> Any:
    """Decodes untrusted JSON with FHIR's rules, or raises FhirError / ResourceExhausted."""
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ResourceExhausted(
            f"document of {size} bytes exceeds the limit of {max_bytes} bytes",
            reason="PAYLOAD_TOO_LARGE",
            limit_bytes=str(max_bytes),
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except UnicodeDecodeError as exc:
        raise _single(f"not UTF-8: {exc.reason} at byte {exc.start}", "structure", field) from None
    except RecursionError:
        raise _single("JSON nested too deeply", "structure", field) from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError, and so is a duplicate key
        raise _single(f"not valid JSON: {exc}", "structure", field) from None
    problem = _check_shape(value, MAX_DEPTH)
    if problem is not None:
        raise _single(problem, "structure", field)
    return value


def _single(diagnostics: str, code: str, field: str, expression: str | None = None) -> FhirError:
    return FhirError(diagnostics, [Issue("error", code, diagnostics, expression)], _prefix(field))


def _prefix(field: str) -> str:
    return f"{field}." if field else ""


def model_class(resource_type: str) -> type[Resource]:
    """The R4 model class of a resource type; KeyError for unknown or R4B-only types."""
    if resource_type in R4B_ONLY_TYPES:
        raise KeyError(resource_type)
    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        raise KeyError(resource_type) from None
    if not issubclass(cls, FHIRResourceModel):  # a datatype name such as "HumanName"
        raise KeyError(resource_type)
    return cls


def parse_resource(
    raw: bytes | str | dict[str, Any],
    expected_type: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    field: str = "",
) -> Resource:
    """Parses and validates one FHIR R4 resource; raises FhirError naming every problem.

    `field` names where the document came from (e.g. `fhir_json`), so violations read
    `fhir_json.subject.reference` in a gRPC BadRequest.
    """
    return parse_document(raw, expected_type, max_bytes=max_bytes, field=field)[1]


def parse_document(
    raw: bytes | str | dict[str, Any],
    expected_type: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    field: str = "",
) -> tuple[dict[str, Any], Resource]:
    """Like parse_resource, and also returns the decoded JSON the model was validated from."""
    data = raw if isinstance(raw, dict) else load_json(raw, max_bytes=max_bytes, field=field)
    if not isinstance(data, dict):
        raise _single("a FHIR resource must be a JSON object", "structure", field)
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise _single("resourceType is missing", "required", field, "resourceType")
    try:
        cls = model_class(resource_type)
    except KeyError:
        raise _single(
            f"unknown FHIR R4 resource type {resource_type!r}",
            "not-supported",
            field,
            "resourceType",
        ) from None
    if expected_type is not None and resource_type != expected_type:
        raise _single(
            f"expected a {expected_type}, got a {resource_type}", "invalid", field, "resourceType"
        )
    try:
        return data, cls.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_from_pydantic(resource_type, err, cls) for err in exc.errors()]
        raise FhirError(f"invalid {resource_type}", issues, _prefix(field)) from None
    except (ValueError, TypeError) as exc:
        raise _single(f"invalid {resource_type}: {exc}", "invalid", field) from None


def _issue_from_pydantic(resource_type: str, err: Any, cls: type[Resource] | None = None) -> Issue:
    parts: list[str] = []
    locs = tuple(err.get("loc", ()))
    if locs and locs[-1] == "root":  # the models' wrapper of a complex value, not an element
        locs = locs[:-1]
    for loc in locs:
        if isinstance(loc, int):
            parts.append(f"[{loc}]")
        elif loc != "__root__":
            parts.append(f".{loc}" if parts else str(loc))
    path = "".join(parts)
    expression = f"{resource_type}.{path}" if path else resource_type
    # Only the message, never `input`: it may be patient data, and errors reach logs.
    message = str(err.get("msg", "invalid value"))
    code = "required" if err.get("type") == "missing" else "value"
    if (
        cls is not None
        and err.get("type") in _NOT_AN_OBJECT
        and not isinstance(err.get("input"), dict)
    ):
        # The models try to read a string given for a complex element as JSON text, and say
        # "Invalid JSON at line 1 column 1" about `"subject": "Patient/1"`; name what is wanted.
        wanted = _complex_type_at(cls, locs)
        if wanted is not None:
            return Issue("error", "structure", f"{expression} must be {wanted}", expression)
    return Issue("error", code, message, expression)


#: Pydantic error types raised when a complex element is given something that is not an object.
_NOT_AN_OBJECT = frozenset(
    {
        "json_invalid",
        "json_type",
        "model_type",
        "dict_type",
        "model_attributes_type",
        "model_validation_format",
    }
)


def _unwrap(annotation: Any) -> Any:
    """The element type inside Optional[...] / List[...] annotations."""
    while True:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (list, typing.Union, types.UnionType) and args:
            annotation = args[0]
            continue
        return annotation


def _field(model: Any, name: str) -> Any:
    fields = getattr(model, "model_fields", {})
    if name in fields:
        return fields[name]
    for info in fields.values():
        if info.alias == name:
            return info
    return None


def _complex_type_at(cls: type[Resource], loc: tuple[Any, ...]) -> str | None:
    """What the element at a pydantic error location must be ("a Reference object", "a JSON
    object"), by walking the model's fields; None when the location is not a complex element."""
    model: Any = cls
    target: Any = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        info = _field(model, str(part))
        if info is None:
            return None
        target = _unwrap(info.annotation)
        klass = getattr(target, "get_model_klass", None)
        model = klass() if callable(klass) else None
    if model is None or target is None:
        return None
    name = model.__name__
    if _is_datatype(model):
        article = "an" if name[0] in "AEIOU" else "a"
        return f"{article} {name} object"
    return "a JSON object"


def _is_datatype(model: Any) -> bool:
    """A FHIR datatype (Reference, CodeableConcept, Period, ...) rather than a backbone element."""
    # Datatypes live in a module of their own name (`reference.Reference`); backbone elements in
    # their resource's (`careplan.CarePlanActivity`).
    return bool(str(model.__module__).rsplit(".", 1)[-1] == model.__name__.lower())


def to_json(resource: Resource) -> str:
    """Canonical JSON of a resource: what we store, publish and serve byte for byte (written by
    kit.fhir_json, byte-identical to fhir.resources' own serialiser, about ten times faster)."""
    return fhir_json.to_json(resource)


def canonical(resource: Resource) -> dict[str, Any]:
    """A validated resource as its canonical JSON object, ready for `stamp` (the costly part of
    writing it, done before a transaction starts)."""
    try:
        return fhir_json.canonical(resource)
    except fhir_json.Unsupported:
        document: dict[str, Any] = json.loads(to_json(resource))
        return document


def element(type_name: str, **values: Any) -> Any:
    """A FHIR datatype instance (e.g. `element("Extension", url=..., valueDate=...)`), for code
    that must not import the models itself."""
    return get_fhir_model_class(type_name)(**values)


def with_identity(resource: Resource, resource_id: str, version: int, updated: datetime) -> str:
    """Canonical JSON of a validated resource with the server's id, versionId and lastUpdated.

    The stored form is the model's own serialisation, not the client's bytes: the models accept
    values they coerce (`"count": "5"`, `"doNotPerform": "yes"`), and what we store, serve and
    publish must be the valid R4 JSON those values mean.
    """
    return stamp(canonical(resource), resource_id, version, updated)


def stamp(document: dict[str, Any], resource_id: str, version: int, updated: datetime) -> str:
    """`with_identity` of a resource already made `canonical`: only the id and the meta are set
    and the text written, which is cheap enough for the inside of a write transaction.

    Security labels, tags and profiles the client sent are kept: stripping an inbound label
    would lower the protection of the data (test-matrix C7)."""
    meta = {
        **document.get("meta", {}),
        "versionId": str(version),
        "lastUpdated": updated.astimezone(UTC),
    }
    stamped = {
        **document,
        "id": resource_id,
        "meta": fhir_json.reorder(meta, get_fhir_model_class("Meta")),
    }
    return fhir_json.dumps(fhir_json.reorder(stamped, model_class(document["resourceType"])))


def instant(value: datetime) -> str:
    """A FHIR instant in UTC, written as the models write it (`2026-11-27T09:30:00.123456Z`,
    no fraction when it is zero), so stored resources round-trip byte for byte."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_dict(resource: Resource) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(to_json(resource))
    return result


_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def is_valid_id(value: str) -> bool:
    """A FHIR logical id: 1 to 64 of A-Z, a-z, 0-9, '-' and '.'."""
    return bool(_ID.match(value))


def reference_id(
    reference: str | None, resource_type: str, *, allow_absolute: bool = False
) -> str | None:
    """The id in a literal reference `Patient/123` (or `Patient/123/_history/2`).

    Only relative references name our own resources: `https://other.example/fhir/Patient/123` is
    somebody else's patient 123, so absolute URLs give None unless `allow_absolute` (for reading
    what another system sent). Ids that are not valid FHIR ids give None.
    """
    if not reference:
        return None
    if "://" in reference and not allow_absolute:
        return None
    parts = _reference_parts(reference.rstrip("/"))
    if not allow_absolute and len(parts) != 2:
        return None
    if len(parts) >= 2 and parts[-2] == resource_type and is_valid_id(parts[-1]):
        return parts[-1]
    return None


def loose_reference_id(reference: Any, resource_type: str) -> str:
    """The id of `Patient/123` (or `Patient/123/_history/2`, or an absolute URL ending so), or ''.

    Unlike `reference_id` the id is taken as written, unchecked: the fhir_commands of a service
    hand it on, and the service refuses a bad id in its own words.
    """
    if not isinstance(reference, str):
        return ""
    parts = _reference_parts(reference)
    return parts[-1] if len(parts) >= 2 and parts[-2] == resource_type else ""


def _reference_parts(reference: str) -> list[str]:
    """The segments of a literal reference, without a trailing `_history/<version>`."""
    parts = reference.split("/")
    return parts[: parts.index("_history")] if "_history" in parts else parts


def refusal(code: str, diagnostics: str, expression: str | None) -> FhirError:
    """A resource that cannot become a request: one OperationOutcome issue at `expression`."""
    return FhirError(diagnostics, [Issue("error", code, diagnostics, expression)])


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource (as a dict) carrying the issues."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": issue.severity,
                "code": issue.code,
                "diagnostics": issue.diagnostics,
                **({"expression": [issue.expression]} if issue.expression else {}),
            }
            for issue in issues
        ],
    }
