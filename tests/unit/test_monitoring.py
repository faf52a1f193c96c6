"""Medical monitoring rules (issue 12, part 2): canonical units, panels, coded screens, thresholds
and the physician's template activities. Pure functions, no I/O."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from iopcare.careplan import codes, fhir_map
from iopcare.careplan.domain import monitoring
from iopcare.careplan.domain.measures import check_measure, reading
from iopcare.careplan.domain.model import activity_owner
from iopcare.careplan.domain.templates import draft_plan, template_for
from iopcare.careplan.template_files import load_templates
from iopcare.kit import fhir
from iopcare.kit.errors import InvalidArgument
from tests.support.monitoring import blood_pressure, cows, lithium, quantity, urine_screen


def _read(body: dict[str, Any]) -> monitoring.Reading | None:
    measure = fhir_map.measure_from_fhir(fhir.parse_resource(body, "Observation"))
    check_measure(measure)
    return reading(measure)


def _problems(body: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        _read(body)
    return [f"{v.field}: {v.description}" for v in caught.value.violations]


@pytest.mark.parametrize(
    ("unit", "value", "canonical"),
    [("mmol/L", 0.9, 0.9), ("meq/L", 1.5, 1.5), ("umol/L", 1300, 1.3)],
)
def test_lithium_is_read_in_mmol_per_litre(unit: str, value: float, canonical: float) -> None:
    found = _read(lithium("p1", value, unit))
    assert found is not None and found.value == pytest.approx(canonical)


def test_lithium_in_mg_per_dl_does_not_convert_and_is_refused() -> None:
    (problem,) = _problems(lithium("p1", 1.0, "mg/dL"))
    assert "valueQuantity.code" in problem
    assert "mg/dL does not convert to mmol/L" in problem


def test_a_blood_pressure_panel_is_read_with_both_components() -> None:
    found = _read(blood_pressure("p1", 182, 95))
    assert found is not None and found.components == {"8480-6": 182.0, "8462-4": 95.0}
    (alert,) = monitoring.alerts(found, monitoring.Thresholds())
    assert alert.measure == "8480-6" and alert.roles == ("physician", "psychiatrist")


def test_a_panel_missing_a_component_is_refused_naming_it() -> None:
    (problem,) = _problems(blood_pressure("p1", 120, None))
    assert "component" in problem and "8462-4 (Diastolic blood pressure)" in problem


def test_a_panel_component_in_the_wrong_unit_is_refused() -> None:
    body = blood_pressure("p1", 120, 80)
    body["component"][0]["valueQuantity"]["code"] = "kPa"
    (problem,) = _problems(body)
    assert "component[0].valueQuantity.code" in problem


def test_unknown_codes_are_refused_for_labs_coded_results_and_panels() -> None:
    lab = lithium("p1", 1.0, "mmol/L")
    lab["code"]["coding"][0]["code"] = "99999-9"
    assert "99999-9 is not a measure the program records" in _problems(lab)[0]
    screen = urine_screen("p1", "19295-5", positive=True)
    screen["valueCodeableConcept"]["coding"][0]["code"] = "123"
    assert "positive" in _problems(screen)[0]


def test_a_urine_drug_screen_is_coded_positive_or_negative() -> None:
    found = _read(urine_screen("p1", "19295-5", positive=True))
    assert found is not None and found.result == monitoring.POSITIVE and found.spec.substance_use


def test_a_vital_sign_needs_its_category() -> None:
    body = quantity("p1", "8867-4", 72, "/min")
    body["category"][0]["coding"][0]["code"] = "exam"
    assert "vital-signs" in _problems(body)[0]


def test_temperature_in_fahrenheit_converts() -> None:
    found = _read(quantity("p1", "8310-5", 98.6, "[degF]"))
    assert found is not None and found.value == pytest.approx(37.0)


@pytest.mark.parametrize(
    ("body", "alerted"),
    [
        (cows("p1", 13), True),
        (cows("p1", 12), False),
        (quantity("p1", codes.CIWA_AR_TOTAL, 10, "{score}", program=True), True),
        (quantity("p1", codes.CIWA_AR_TOTAL, 9, "{score}", program=True), False),
        (lithium("p1", 1.2, "mmol/L"), False),
        (lithium("p1", 1.21, "mmol/L"), True),
        (quantity("p1", "2823-3", 2.9, "mmol/L"), True),
        (quantity("p1", "2823-3", 3.0, "mmol/L"), False),
        (quantity("p1", "8867-4", 49, "/min"), True),
        (quantity("p1", "8867-4", 50, "/min"), False),
        (quantity("p1", "8636-3", 501, "ms"), True),
        (quantity("p1", "8636-3", 500, "ms"), False),
        (blood_pressure("p1", 180, 90), True),
        (blood_pressure("p1", 179, 90), False),
    ],
)
def test_each_threshold_alerts_at_its_boundary(body: dict[str, Any], alerted: bool) -> None:
    assert bool(monitoring.alerts(_read(body), monitoring.Thresholds())) is alerted


def test_thresholds_are_configurable_and_unknown_names_are_refused() -> None:
    strict = monitoring.Thresholds().with_overrides({"cows_min": 10})
    assert monitoring.alerts(_read(cows("p1", 11)), strict)
    with pytest.raises(ValueError, match="unknown monitoring thresholds"):
        monitoring.Thresholds().with_overrides({"cows": 10})


def test_the_alert_travels_on_the_event_observation_and_reads_back() -> None:
    stored = fhir.to_json(fhir.parse_resource({**cows("p1", 14), "id": "o1"}, "Observation"))
    (alert,) = monitoring.alerts(_read(cows("p1", 14)), monitoring.Thresholds())
    payload = fhir_map.with_alerts(stored, [alert])
    assert fhir_map.alerts_from_fhir(fhir.parse_resource(payload)) == [alert]
    assert "extension" not in json.loads(stored)


def test_the_physician_owns_vitals_labs_and_drug_screens_in_the_sud_template() -> None:
    template = template_for(load_templates(), "F11.23")
    plan = draft_plan(template, "p1", "F11.23", "t1", date(2026, 12, 1))
    medical = [
        a["detail"]
        for a in plan["activity"]
        if a["detail"]["code"]["coding"][0]["code"] in ("61746007", "15220000", "310627008")
    ]
    assert len(medical) == 3
    assert all(d["performer"] == [{"display": "General physician"}] for d in medical)
    draft = fhir_map.draft_from_fhir(fhir.parse_resource(plan))
    owners = {a.code: activity_owner(a) for a in draft.activities}
    assert {owners[c] for c in ("61746007", "15220000", "310627008")} == {"physician"}


def test_the_handoff_summary_shows_panels_and_coded_results() -> None:
    from iopcare.gateway.summary_out import _measure_line

    assert _measure_line(blood_pressure("p1", 128, 82)).endswith(
        ": Systolic blood pressure 128 mm[Hg], Diastolic blood pressure 82 mm[Hg]"
    )
    assert _measure_line(urine_screen("p1", "19295-5", positive=False)).endswith(": Negative")
    assert _measure_line(lithium("p1", 0.8)).endswith(": 0.8 mmol/L")
    assert _measure_line(cows("p1", 7)).endswith(": 7")


def test_the_demo_monitoring_is_accepted_and_raises_no_alert() -> None:
    from iopcare.demo import demo_monitoring

    readings = [_read(o) for o in demo_monitoring("p1")]
    assert [r.spec.code for r in readings if r is not None] == [
        "85354-9",
        "8867-4",
        "ciwa-ar-total",
    ]
    assert not any(monitoring.alerts(r, monitoring.Thresholds()) for r in readings)
