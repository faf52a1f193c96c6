"""The pure part of what `$handoff` keeps of a discharge document (gateway/handoff_content.py)."""

from __future__ import annotations

from typing import Any

import pytest

from iopcare.gateway import handoff_content as hc
from iopcare.gateway.errors import FhirHttpError

PATIENT = "urn:uuid:p"


def _bundle(*entries: tuple[str, dict[str, Any]], kind: str = "document") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": []} | {
        "entry": [{"fullUrl": u, "resource": r} for u, r in entries]
    }


def _entries(bundle: dict[str, Any]) -> list[hc.Entry]:
    return hc.entries_of([(e["fullUrl"], e["resource"]) for e in bundle["entry"]])


COMPOSITION = {
    "resourceType": "Composition",
    "title": "Discharge summary",
    "date": "2026-11-26T15:00:00Z",
    "section": [
        {
            "title": "Problems",
            "text": {
                "div": "<div><p>Alcohol withdrawal.</p>"
                "<table><tr><td>a</td><td>b</td></tr></table></div>"
            },
            "entry": [{"reference": "urn:uuid:c1"}],
            "section": [{"title": "Nested", "entry": [{"reference": "Condition/c2"}]}],
        }
    ],
}
CONDITION = {
    "resourceType": "Condition",
    "meta": {"security": [{"code": "ETH"}, {"code": "R"}]},
    "code": {"coding": [{"code": "F10.20", "display": "Alcohol dependence"}]},
}


def test_a_document_starts_with_its_composition() -> None:
    bundle = _bundle((PATIENT, {"resourceType": "Patient"}), ("urn:uuid:k", COMPOSITION))
    with pytest.raises(FhirHttpError) as refused:
        hc.check_document(bundle, _entries(bundle))
    assert refused.value.status == 422
    assert refused.value.problems[0].expression == "Bundle.entry[0]"
    # A collection may carry its Composition anywhere.
    bundle["type"] = "collection"
    with pytest.raises(FhirHttpError) as missing:
        hc.check_document(bundle, _entries(bundle))
    assert missing.value.problems[0].expression == "Bundle.entry[1].resource.section[0].entry[0]"


def test_every_entry_a_section_names_must_be_in_the_bundle() -> None:
    bundle = _bundle(
        ("urn:uuid:k", COMPOSITION),
        ("urn:uuid:c1", CONDITION),
        ("http://h/fhir/Condition/c9", {**CONDITION, "id": "c9"}),
    )
    with pytest.raises(FhirHttpError) as refused:
        hc.check_document(bundle, _entries(bundle))
    assert refused.value.problems[0].expression == (
        "Bundle.entry[0].resource.section[0].section[0].entry[0]"
    )
    assert "Condition/c2" in refused.value.problems[0].diagnostics
    # Named by Type/id, the entry is found whatever its fullUrl.
    bundle["entry"][2]["resource"]["id"] = "c2"
    assert hc.check_document(bundle, _entries(bundle)) == COMPOSITION


def test_the_narrative_becomes_text_with_a_line_per_entry() -> None:
    bundle = _bundle(
        ("urn:uuid:k", COMPOSITION),
        ("urn:uuid:c1", CONDITION),
        ("urn:uuid:c2", {**CONDITION, "id": "c2"}),
    )
    text = hc.document_text(COMPOSITION, _entries(bundle))
    assert text.splitlines() == [
        "Discharge summary",
        "Date: 2026-11-26T15:00:00Z",
        "",
        "## Problems",
        "Alcohol withdrawal.",
        "a | b",
        "- Condition: Alcohol dependence",
        "",
        "## Nested",
        "- Condition: Alcohol dependence",
    ]


def test_the_note_carries_the_labels_of_the_bundle_composition_and_named_entries() -> None:
    bundle = _bundle(("urn:uuid:k", COMPOSITION), ("urn:uuid:c1", CONDITION))
    bundle["meta"] = {"security": [{"code": "PSY"}]}
    assert hc.document_labels(bundle, COMPOSITION, _entries(bundle)) == ("R", ["ETH", "PSY"], [])
    # A label a note cannot carry (e.g. HIV) raises it to restricted at least.
    plain = _bundle(("urn:uuid:k", {**COMPOSITION, "section": [], "confidentiality": "N"}))
    plain["meta"] = {"security": [{"code": "HIV"}]}
    assert hc.document_labels(plain, plain["entry"][0]["resource"], []) == ("R", [], ["HIV"])
    assert hc.document_labels(_bundle(), {"section": []}, []) == ("N", [], [])


def test_which_observations_careplan_is_asked_to_record() -> None:
    ours = {PATIENT, "Patient/p"}
    measure = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": hc.LOINC, "code": "8867-4"}]},
        "subject": {"reference": PATIENT},
        "effectiveDateTime": "2026-11-26T08:00:00Z",
        "valueQuantity": {"value": 80},
    }
    assert hc.measure_problem(measure, ours) is None
    assert hc.measure_problem({**measure, "subject": {"reference": "Patient/q"}}, ours)
    assert "LOINC" in str(hc.measure_problem({**measure, "code": {"text": "x"}}, ours))
    timeless = {k: v for k, v in measure.items() if k != "effectiveDateTime"}
    assert "effectiveDateTime" in str(hc.measure_problem(timeless, ours))
    valueless = {k: v for k, v in measure.items() if k != "valueQuantity"}
    assert hc.measure_problem(valueless, ours) == "it carries no value"


def test_a_skipped_entry_names_itself_and_why() -> None:
    entry = hc.Entry(3, "urn:uuid:e", {"resourceType": "Encounter"})
    problem = hc.skipped(entry, hc.NOT_KEPT["Encounter"])
    assert (problem.code, problem.severity, problem.expression) == (
        "not-supported",
        "warning",
        "Bundle.entry[3]",
    )
    assert problem.diagnostics.startswith("Encounter urn:uuid:e not taken in: ")


def test_only_the_latest_reading_of_each_measure_is_recorded() -> None:
    def reading(index: int, code: str, when: str) -> hc.Entry:
        return hc.Entry(
            index,
            f"urn:uuid:{index}",
            {
                "resourceType": "Observation",
                "code": {"coding": [{"system": hc.LOINC, "code": code}]},
                "effectiveDateTime": when,
            },
        )

    readings = [
        reading(1, "8867-4", "2026-11-26T08:00:00+01:00"),  # 07:00Z: the latest heart rate
        reading(2, "8867-4", "2026-11-26T06:30:00Z"),
        reading(3, "44261-6", "2026-11-20T10:00:00Z"),
        reading(4, "8867-4", "2026-11-25T23:00:00Z"),
    ]
    latest, earlier = hc.latest_per_measure(readings)
    assert [e.index for e in latest] == [1, 3]
    assert sorted(earlier) == [2, 4]
    assert "latest reading of each measure" in earlier[2]
