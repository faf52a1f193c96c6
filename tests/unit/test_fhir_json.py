"""kit.fhir_json writes what fhir.resources' own serialiser writes, byte for byte (ADR 0025).

The reference is fhir.resources' `model_dump_json(exclude_none=True, by_alias=True)` (what
kit.fhir.to_json called before) and the old `with_identity` (a model copy with the id and meta
set, then that serialiser). Inputs: HL7's R4 example resources and Bundles, the project's plan
templates, and resources generated from the models' own field tables by hypothesis (every element
optional or not, lists, primitive extensions with null placeholders, choice types, decimals,
dates, times and instants in every shape the models accept).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from iopcare.careplan.domain.templates import draft_plan
from iopcare.careplan.template_files import load_template
from iopcare.kit import fhir
from tests.support import harness, hl7_examples

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "services/iopcare/careplan/templates").glob("*.json"))
UPDATED = [
    dt.datetime(2026, 12, 3, 18, 4, 5, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 18, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
]


def reference_json(resource: Any) -> str:
    return str(resource.model_dump_json(exclude_none=True, by_alias=True))


def reference_with_identity(resource: Any, rid: str, version: int, updated: dt.datetime) -> str:
    meta_cls = type(resource).model_fields["meta"].annotation
    meta_cls = _complex_class(meta_cls)
    meta = (resource.meta or meta_cls()).model_copy(
        update={"versionId": str(version), "lastUpdated": updated.astimezone(dt.UTC)}
    )
    return reference_json(resource.model_copy(update={"id": rid, "meta": meta}))


def assert_same(resource: Any, label: str, *, stamped: bool = True) -> None:
    assert fhir.to_json(resource) == reference_json(resource), label
    for updated in UPDATED if stamped else ():
        expected = reference_with_identity(resource, "id-1", 7, updated)
        assert fhir.with_identity(resource, "id-1", 7, updated) == expected, label


def _hl7_files() -> Iterator[Path]:
    reason = hl7_examples.unavailable()
    if reason is not None:
        harness.missing(reason)
    folder = hl7_examples.examples_dir()
    yield from sorted(folder.glob("*.json"))
    # The Bundles, when the gateway tests fetched them (tests/support/gateway.py); the few of
    # several megabytes (terminology) are over the codec's size limit.
    bundles = sorted(folder.with_name("r4-bundles-4.0.1").glob("*.json"))
    yield from (path for path in bundles if path.stat().st_size < 512 * 1024)


def test_the_hl7_examples_are_written_byte_for_byte_as_fhir_resources_writes_them() -> None:
    checked = 0
    for path in _hl7_files():
        try:
            resource = fhir.parse_resource(path.read_bytes())
        except fhir.FhirError:
            continue  # an example our codec refuses (tests/integration/test_hl7_examples.py)
        # With the id and meta set for every third (the reference serialiser is the slow part).
        assert_same(resource, path.name, stamped=checked % 3 == 0)
        checked += 1
    assert checked >= 100


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_the_plans_drafted_from_the_templates_are_written_as_before(path: Path) -> None:
    plan = draft_plan(load_template(path), "p1", "F32.1", "team-1", dt.date(2026, 12, 3))
    assert_same(fhir.parse_resource(plan, "CarePlan"), path.name)


def test_a_stamped_resource_keeps_the_clients_meta_in_canonical_order() -> None:
    resource = fhir.parse_resource(
        {
            "resourceType": "CarePlan",
            "meta": {
                "tag": [{"code": "t"}],
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "R",
                    }
                ],
                "_versionId": {"extension": [{"url": "http://x", "valueString": "y"}]},
                "versionId": "99",
                "source": "http://source",
            },
            "_status": {"extension": [{"url": "http://x", "valueBoolean": True}]},
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/1"},
        }
    )
    assert_same(resource, "meta")
    stamped = json.loads(fhir.with_identity(resource, "x", 2, UPDATED[0]))
    assert list(stamped)[:3] == ["resourceType", "id", "meta"]
    assert list(stamped["meta"]) == [
        "versionId",
        "_versionId",
        "lastUpdated",
        "source",
        "security",
        "tag",
    ]


# -- generated resources ------------------------------------------------------------------------

TYPES = ["CarePlan", "CareTeam", "Goal", "Observation", "Appointment", "Patient", "Communication"]


def _args(annotation: Any) -> list[Any]:
    return [a for a in typing.get_args(annotation) if a is not type(None)]


def _is_list(annotation: Any) -> bool:
    while typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = _args(annotation)[0]
    return typing.get_origin(annotation) is list


def _inner(annotation: Any) -> Any:
    while typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        annotation = _args(annotation)[0]
    return annotation


def _complex_class(annotation: Any) -> Any:
    klass = getattr(_inner(annotation), "get_model_klass", None)
    return klass() if callable(klass) else None


_DIGITS = st.integers(min_value=0, max_value=10**12)
_TZ = st.sampled_from(["Z", "+00:00", "-05:00", "+14:00", "+05:30"])
_FRACTION = st.sampled_from(["", ".0", ".5", ".123", ".123456", ".1234567"])


@st.composite
def _date_time(draw: st.DrawFn, instant: bool = False) -> str:
    day = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)))
    kind = "full" if instant else draw(st.sampled_from(["year", "month", "date", "full"]))
    if kind == "year":
        return f"{day.year:04d}"
    if kind == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if kind == "date":
        return day.isoformat()
    time = draw(st.times()).replace(microsecond=0).isoformat()
    return f"{day.isoformat()}T{time}{draw(_FRACTION)}{draw(_TZ)}"


def _decimal() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=-(10**15), max_value=10**15),
        st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
        st.tuples(_DIGITS, st.integers(min_value=0, max_value=6)).map(
            lambda t: float(f"{t[0]}.{'0' * t[1]}5")
        ),
    )


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() == s and s.strip())


def _primitive(annotation: Any) -> st.SearchStrategy[Any]:
    inner = _inner(annotation)
    marks = {type(m).__name__ for m in getattr(inner, "__metadata__", ())}
    base = typing.get_args(inner)[0] if typing.get_origin(inner) is typing.Annotated else inner
    if "Decimal" in marks:
        return _decimal()
    if "Instant" in marks:
        return _date_time(instant=True)
    if "DateTime" in marks:
        return _date_time()
    if "Date" in marks:
        return st.dates().map(lambda d: d.isoformat())
    if "Time" in marks:
        return st.times().map(lambda t: t.replace(microsecond=0).isoformat())
    if "Id" in marks or "Code" in marks:
        return st.from_regex(re.compile(r"[A-Za-z0-9][A-Za-z0-9\-.]{0,10}"), fullmatch=True)
    if marks & {"Uri", "Url", "Canonical", "Oid", "Uuid"}:
        return st.sampled_from(
            [
                "http://example.org/x",
                "urn:oid:1.2.3",
                "urn:uuid:" + "1" * 8 + "-1111-1111-1111-" + "1" * 12,
            ]
        )
    if base is bool:
        return st.booleans()
    if base is int:
        return st.integers(min_value=0, max_value=2**31 - 1)
    if "Base64Binary" in str(inner) or base is bytes:
        return st.sampled_from(["aGVsbG8=", "AAEC"])
    return _TEXT


def _extension(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"url": st.just("http://example.org/ext")},
        optional={"valueString": _TEXT, "valueDecimal": _decimal(), "valueBoolean": st.booleans()},
    )


@st.composite
def _element(draw: st.DrawFn, cls: Any, depth: int) -> dict[str, Any]:
    """A JSON object for model `cls`: each element present or not, one choice per `[x]`."""
    out: dict[str, Any] = {}
    chosen: set[str] = set()
    for name, info in cls.model_fields.items():
        if name.endswith("__ext") or name in {"fhir_comments", "resource_type"}:
            continue
        extra = info.json_schema_extra or {}
        key = info.alias or name
        choice = extra.get("one_of_many") if isinstance(extra, dict) else None
        required = info.is_required() or bool(extra.get("one_of_many_required"))
        if choice in chosen or (choice is None and key in {"contained", "modifierExtension"}):
            continue
        if not required and not draw(st.booleans() if depth < 1 else st.just(False)):
            continue
        klass = _complex_class(info.annotation)
        if klass is not None:
            if klass.__name__ in {"Extension", "Resource"} or depth >= 2:
                value: Any = draw(_extension(depth)) if klass.__name__ == "Extension" else None
                if value is None:
                    continue
            else:
                value = draw(_element(klass, depth + 1))
                if not value:
                    continue
        else:
            value = draw(_primitive(info.annotation))
        if _is_list(info.annotation):
            values = [value, *draw(st.lists(st.just(value), max_size=1))]
            out[key] = values
            if klass is None and f"{name}__ext" in cls.model_fields and draw(st.booleans()):
                out[f"_{key}"] = [
                    None if i else {"extension": [draw(_extension(depth))]}
                    for i in range(len(values))
                ]
        else:
            out[key] = value
            if klass is None and f"{name}__ext" in cls.model_fields and draw(st.booleans()):
                out[f"_{key}"] = {"extension": [draw(_extension(depth))]}
        if choice:
            chosen.add(choice)
    return out


@st.composite
def _resource(draw: st.DrawFn) -> dict[str, Any]:
    resource_type = draw(st.sampled_from(TYPES))
    body = draw(_element(fhir.model_class(resource_type), 0))
    return {"resourceType": resource_type, **body}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(_resource())
def test_generated_resources_are_written_byte_for_byte_as_fhir_resources_writes_them(
    document: dict[str, Any],
) -> None:
    try:
        resource = fhir.parse_resource(document)
    except fhir.FhirError:
        assume(False)
        return
    assert_same(resource, json.dumps(document)[:200])
