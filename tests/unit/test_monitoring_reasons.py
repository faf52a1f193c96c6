"""What a medical alert says (the reason the physician and the psychiatrist read), one per
threshold rule of `monitoring.alerts`: the measure, its value and unit, the limit crossed and what
crossing it means."""

from __future__ import annotations

from typing import Any

import pytest

from iopcare.careplan import codes, fhir_map
from iopcare.careplan.domain import monitoring
from iopcare.careplan.domain.measures import check_measure, reading
from iopcare.kit import fhir
from tests.support.monitoring import blood_pressure, cows, lithium, quantity


def _alerts(body: dict[str, Any], limits: monitoring.Thresholds) -> list[monitoring.Alert]:
    measure = fhir_map.measure_from_fhir(fhir.parse_resource(body, "Observation"))
    check_measure(measure)
    return monitoring.alerts(reading(measure), limits)


@pytest.mark.parametrize(
    ("body", "measure", "reason"),
    [
        (
            blood_pressure("p1", 185, 90),
            "8480-6",
            "Systolic blood pressure 185 mm[Hg] (>= 180: severe hypertension)",
        ),
        (
            quantity("p1", "8480-6", 181, "mm[Hg]"),
            "8480-6",
            "Systolic blood pressure 181 mm[Hg] (>= 180: severe hypertension)",
        ),
        (
            cows("p1", 14),
            codes.COWS_TOTAL,
            "COWS total score 14 (>= 13: moderate opioid withdrawal or worse)",
        ),
        (
            quantity("p1", codes.CIWA_AR_TOTAL, 12, "{score}", program=True),
            codes.CIWA_AR_TOTAL,
            "CIWA-Ar total score 12 (>= 10: alcohol withdrawal needing treatment or more care)",
        ),
        (
            lithium("p1", 1.5),
            "14334-7",
            "Lithium 1.5 mmol/L (> 1.2: above the therapeutic range, risk of toxicity)",
        ),
        (
            quantity("p1", "2823-3", 2.5, "mmol/L"),
            "2823-3",
            "Potassium 2.5 mmol/L (< 3: hypokalemia)",
        ),
        (quantity("p1", "8867-4", 44, "/min"), "8867-4", "Heart rate 44 /min (< 50: bradycardia)"),
        (
            quantity("p1", "8636-3", 520, "ms"),
            "8636-3",
            "QTc interval 520 ms (> 500: prolonged QTc, risk of torsades de pointes)",
        ),
    ],
)
def test_each_alert_says_what_crossed_which_limit(
    body: dict[str, Any], measure: str, reason: str
) -> None:
    (alert,) = _alerts(body, monitoring.Thresholds())
    assert (alert.kind, alert.severity, alert.measure, alert.reason) == (
        "medical",
        "urgent",
        measure,
        reason,
    )
    # Signs of medical instability in an eating disorder reach the dietitian too.
    if measure in monitoring.INSTABILITY_SIGNS:
        assert alert.roles == ("physician", "psychiatrist", "dietitian")
    else:
        assert alert.roles == monitoring.MEDICAL_ROLES


def test_an_overridden_limit_is_the_one_the_reason_names() -> None:
    strict = monitoring.Thresholds().with_overrides({"heart_rate_below": 60})
    (alert,) = _alerts(quantity("p1", "8867-4", 55, "/min"), strict)
    assert alert.reason == "Heart rate 55 /min (< 60: bradycardia)"
    assert not _alerts(quantity("p1", "8867-4", 55, "/min"), monitoring.Thresholds())


def test_a_measure_without_a_threshold_never_alerts() -> None:
    assert not _alerts(quantity("p1", "8310-5", 41.5, "Cel"), monitoring.Thresholds())
