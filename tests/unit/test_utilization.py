"""Utilization review rules (careplan.domain.utilization): ASAM ratings and levels, coverage and
authorization checks, units used from attendance, and the alerts before an authorization runs
out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from iopcare.careplan import codes
from iopcare.careplan.domain.ur_packet import ContinuedStay, PacketSources, compose_packet
from iopcare.careplan.domain.utilization import (
    ASAM_DIMENSIONS,
    ASAM_EXTENSION,
    ASAM_LEVEL_SYSTEM,
    EPISODE_EXTENSION,
    AsamRating,
    Authorization,
    Session,
    alerts_due,
    asam_extension,
    asam_level,
    asam_ratings_of,
    check_asam_ratings,
    check_authorization,
    check_coverage,
    program_level,
    units_used,
)
from iopcare.kit.errors import InvalidArgument

SIX = [AsamRating(d, i % 5) for i, d in enumerate(ASAM_DIMENSIONS)]


def _fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in exc.value.violations}


def test_asam_levels_sit_beside_the_programs_levels() -> None:
    assert [asam_level(level) for level in codes.LEVELS_OF_CARE] == ["1", "2.1", "2.5", "3.5", "4"]
    assert program_level("2.1") == "iop"
    assert program_level("3.1") == "residential"
    assert program_level("3.7") == "inpatient"
    assert program_level("9") is None


def test_an_asam_assessment_rates_all_six_dimensions_from_0_to_4() -> None:
    check_asam_ratings(SIX)
    check_asam_ratings([])  # a decision without an assessment (as before)
    with pytest.raises(InvalidArgument) as missing:
        check_asam_ratings(SIX[:5])
    assert _fields(missing) == {"asam_ratings"}
    with pytest.raises(InvalidArgument) as bad:
        check_asam_ratings(
            [*SIX[:5], AsamRating("d6", 5), AsamRating("d1", 0), AsamRating("d9", 1)]
        )
    assert _fields(bad) == {
        "asam_ratings[5].rating",
        "asam_ratings[6].dimension",
        "asam_ratings[7].dimension",
    }


def test_the_assessment_round_trips_through_the_episode_extension() -> None:
    ratings = [*SIX[:5], AsamRating("d6", 3, "unstable housing")]
    extension = asam_extension(ratings, "2026-12-01T10:00:00Z")
    assert extension["url"] == ASAM_EXTENSION
    episode = {"extension": [asam_extension(SIX, "2026-11-01T10:00:00Z"), extension]}
    assert asam_ratings_of(episode) == ratings  # the latest assessment
    assert asam_ratings_of({}) == []


def _coverage(**changes: Any) -> dict[str, Any]:
    coverage: dict[str, Any] = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"display": "Acme Health"}],
        "subscriberId": "M123",
        "class": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                            "code": "plan",
                        }
                    ]
                },
                "value": "GOLD-PPO",
            }
        ],
    }
    return coverage | changes


def test_a_coverage_names_payer_member_id_and_plan() -> None:
    facts = check_coverage(_coverage())
    assert (facts.patient_id, facts.payer, facts.member_id, facts.plan) == (
        "p1",
        "Acme Health",
        "M123",
        "GOLD-PPO",
    )
    with pytest.raises(InvalidArgument) as bad:
        check_coverage(_coverage(subscriberId=None, payor=[], **{"class": []}))
    assert _fields(bad) == {
        "fhir_json.Coverage.payor",
        "fhir_json.Coverage.subscriberId",
        "fhir_json.Coverage.class",
    }


def authorization(
    units: int = 12, level: dict[str, str] | None = None, **changes: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "status": "active",
        "use": "preauthorization",
        "patient": {"reference": "Patient/p1"},
        "extension": [
            {"url": EPISODE_EXTENSION, "valueReference": {"reference": "EpisodeOfCare/e1"}}
        ],
        "preAuthRef": "AUTH-1",
        "preAuthPeriod": {"start": "2026-12-01", "end": "2026-12-31"},
        "addItem": [
            {
                "productOrService": {
                    "coding": [level or {"system": codes.LEVEL_SYSTEM, "code": "iop"}]
                },
                "adjudication": [
                    {
                        "category": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                    "code": "eligible",
                                }
                            ]
                        },
                        "value": units,
                    }
                ],
            }
        ],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
    }
    return resource | changes


def test_an_authorization_is_a_preauthorization_of_a_stay() -> None:
    facts = check_authorization(authorization())
    assert facts == Authorization(
        "p1", "e1", "AUTH-1", "iop", date(2026, 12, 1), date(2026, 12, 31), 12, "sessions", "c1"
    )
    # The level may be given as the ASAM level alone.
    assert (
        check_authorization(authorization(level={"system": ASAM_LEVEL_SYSTEM, "code": "2.5"})).level
        == "php"
    )
    with pytest.raises(InvalidArgument) as bad:
        check_authorization(
            authorization(
                units=0,
                use="claim",
                extension=[],
                preAuthPeriod={"start": "2026-12-31", "end": "2026-12-01"},
                level={"system": "x", "code": "y"},
            )
        )
    assert _fields(bad) == {
        "fhir_json.ClaimResponse.use",
        "fhir_json.ClaimResponse.extension",
        "fhir_json.ClaimResponse.preAuthPeriod",
        "fhir_json.ClaimResponse.addItem[0].productOrService",
        "fhir_json.ClaimResponse.addItem[0].adjudication",
    }


AUTH = check_authorization(authorization())


def _sessions(*days: int, status: str = "fulfilled") -> list[Session]:
    return [Session(date(2026, 12, d), status) for d in days]


def test_units_used_are_attended_sessions_in_the_period() -> None:
    sessions = [
        *_sessions(1, 2, 2, 31),
        *_sessions(3, status="noshow"),
        *_sessions(4, status="booked"),
        Session(date(2026, 11, 30), "fulfilled"),  # before the period
        Session(date(2027, 1, 1), "fulfilled"),  # after it
    ]
    assert units_used(AUTH, sessions) == 4
    per_diem = check_authorization(
        authorization(
            extension=[
                *authorization()["extension"],
                {
                    "url": "https://iopcare.org/fhir/StructureDefinition/authorized-unit",
                    "valueCode": "days",
                },
            ]
        )
    )
    assert units_used(per_diem, sessions) == 3  # two sessions on the 2nd: one day
    php = check_authorization(authorization(level={"system": codes.LEVEL_SYSTEM, "code": "php"}))
    assert units_used(php, sessions) == 0  # the program's sessions are IOP sessions


def test_alerts_at_three_units_or_seven_days_left_and_on_expiry() -> None:
    mid = date(2026, 12, 10)
    assert alerts_due(AUTH, 8, mid) == []
    low = alerts_due(AUTH, 9, mid)
    assert [a.kind for a in low] == ["units-low"] and "3 of 12 sessions remain" in low[0].text
    assert [a.kind for a in alerts_due(AUTH, 12, mid)] == ["exhausted"]
    assert [a.kind for a in alerts_due(AUTH, 0, AUTH.end - timedelta(days=8))] == []
    assert [a.kind for a in alerts_due(AUTH, 0, AUTH.end - timedelta(days=7))] == ["ending-soon"]
    expired = alerts_due(AUTH, 10, AUTH.end + timedelta(days=1))
    assert [a.kind for a in expired] == ["expired", "units-low"]
    assert expired[0].priority == "urgent" and "expired on 2026-12-31" in expired[0].text


def test_the_ur_packet_is_a_document_with_its_sections_and_labels() -> None:
    episode = {
        "resourceType": "EpisodeOfCare",
        "id": "e1",
        "extension": [asam_extension(SIX, "2026-12-01T10:00:00Z")],
    }
    condition = {
        "resourceType": "Condition",
        "id": "dx",
        "code": {"coding": [{"code": "F10.20"}], "text": "Alcohol dependence"},
    }
    part2 = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}
    plans = [
        {"resourceType": "CarePlan", "id": "cp1", "contained": [condition]},
        {"resourceType": "CarePlan", "id": "cp2", "contained": [condition]},
    ]
    measure = {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"security": [part2]},
        "code": {"text": "PHQ-9"},
        "effectiveDateTime": "2026-12-02T10:00:00Z",
        "valueQuantity": {"value": 14},
    }
    sources = PacketSources(
        "p1",
        {"resourceType": "Patient", "id": "p1"},
        episode,
        {"resourceType": "ClaimResponse", "id": "a1"},
        AUTH,
        9,
        plans,
        [{"resourceType": "Goal", "id": "g1", "description": {"text": "PHQ-9 below 10"}}],
        [measure],
        (9, 1, 3),
    )
    now = datetime(2026, 12, 20, 12, tzinfo=UTC)
    bundle = compose_packet(
        sources, ContinuedStay(8, date(2027, 1, 31), "PHQ-9 still 14"), "https://x/fhir", now
    )
    assert bundle["type"] == "document" and bundle["meta"]["security"] == [part2]
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["subject"] == {"reference": "https://x/fhir/Patient/p1"}
    sections = {s["title"]: s["text"]["div"] for s in composition["section"]}
    assert list(sections) == [
        "Diagnoses",
        "ASAM criteria",
        "Measures over time",
        "Attendance against the plan",
        "Goals and progress",
        "Requested continued stay",
    ]
    assert "Alcohol dependence (F10.20)" in sections["Diagnoses"]
    assert "IOP (ASAM 2.1)" in sections["ASAM criteria"] and "D6 " in sections["ASAM criteria"]
    assert "PHQ-9 2026-12-02: 14" in sections["Measures over time"]
    assert "9 used, 3 remaining" in sections["Attendance against the plan"]
    assert "8 more sessions" in sections["Requested continued stay"]
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Condition") == 1  # one diagnosis, held by both plans
    references = {r["reference"] for s in composition["section"] for r in s.get("entry", [])}
    assert references <= {e["fullUrl"] for e in bundle["entry"]}
