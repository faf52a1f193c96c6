"""The Encounter scheduling makes of an attended session (scheduling.encounters.encounter_data):
a Part 2 labelled session's Encounter keeps its labels and the SUD per diem, so the gateway's
release rule withholds it from an outside EHR without consent; it is a valid R4 Encounter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from iopcare.gateway import disclosure
from iopcare.kit import fhir
from iopcare.scheduling import codes
from iopcare.scheduling.encounters import encounter_data
from iopcare.scheduling.store import StoredAppointment

ETH = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}
START = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)


def _group(security: list[dict[str, str]]) -> StoredAppointment:
    resource = {
        "resourceType": "Appointment",
        "id": "g1",
        "status": "booked",
        "start": fhir.instant(START),
        "end": fhir.instant(START + timedelta(hours=3)),
        "serviceType": [
            {"coding": [{"system": codes.SERVICE_TYPE_SYSTEM, "code": "group-therapy"}]}
        ],
        "participant": [
            {"actor": {"reference": "Location/room-1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/fac-1"}, "status": "accepted"},
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        ],
    }
    if security:
        resource["meta"] = {"security": security}
    return StoredAppointment(
        "g1",
        3,
        "",
        "booked",
        START,
        START + timedelta(hours=3),
        "plan-1",
        json.dumps(resource),
        kind="group",
    )


def test_a_part2_sessions_encounter_keeps_its_labels_and_is_withheld_outside() -> None:
    data = encounter_data(
        _group([ETH]), "p1", "fulfilled", rendering_role="group-facilitator", episodes=[]
    )
    assert data["meta"]["security"] == [ETH]
    assert [t["coding"][0]["code"] for t in data["type"]] == ["H0015", "90853"]
    assert disclosure.withheld_reason(data) is not None
    encounter = fhir.parse_resource({**data, "id": "e1"}, "Encounter")  # valid R4
    assert fhir.to_dict(encounter)["class"]["code"] == "AMB"


def test_an_unlabelled_sessions_encounter_is_the_psychiatric_per_diem_and_released() -> None:
    data = encounter_data(
        _group([]),
        "p1",
        "arrived",
        rendering_role="",
        episodes=["EpisodeOfCare/stay-1"],
    )
    assert "meta" not in data
    assert data["status"] == "arrived"
    assert data["type"][0]["coding"][0]["code"] == "S9480"
    assert data["episodeOfCare"] == [{"reference": "EpisodeOfCare/stay-1"}]
    assert data["participant"] == [
        {
            "type": [{"coding": [{"system": codes.PARTICIPATION_SYSTEM, "code": "PPRF"}]}],
            "individual": {"reference": "Practitioner/fac-1"},
        }
    ]
    assert disclosure.withheld_reason(data) is None
