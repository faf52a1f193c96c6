"""Official HL7 R4 examples: our codec accepts them, and careplan takes its resource types in."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from iopcare.careplan.care_teams import CareTeams
from iopcare.careplan.measures import Measures
from iopcare.careplan.service import CarePlans
from iopcare.kit import fhir
from iopcare.kit.auth import Principal
from iopcare.kit.errors import IopcareError
from iopcare.kit.runtime import ServiceRuntime
from tests.support import harness, hl7_examples

# Loads HL7 examples inside the program: an internal identity, not an outside EHR.
SYSTEM = Principal(subject="service:hl7-examples", role="service")


@pytest.fixture(scope="module")
def folder() -> Path:
    reason = hl7_examples.unavailable()
    if reason is not None:
        harness.missing(reason)
    return hl7_examples.examples_dir()


@pytest.mark.parametrize("resource_type", hl7_examples.TYPES)
def test_every_official_example_parses_and_round_trips(folder: Path, resource_type: str) -> None:
    files = hl7_examples.examples(resource_type)
    assert files, f"no {resource_type} examples in {folder}"
    for path in files:
        resource = fhir.parse_resource(path.read_bytes(), resource_type)
        canonical = fhir.to_json(resource)
        assert fhir.to_json(fhir.parse_resource(canonical)) == canonical, path.name
        # What we store means what HL7 wrote: same content, whatever the formatting.
        assert fhir.to_dict(fhir.parse_resource(path.read_bytes())) == json.loads(canonical)


def test_careplan_takes_in_the_official_care_teams_goals_and_plans(
    folder: Path, careplan: ServiceRuntime
) -> None:
    """Teams and goals as published; plans whose status a new plan may have are created (with
    their care team references pointed at the patient's team), the others are refused with a
    reason, never an unexpected error."""
    db = careplan.db
    accepted: dict[str, int] = {"CareTeam": 0, "Goal": 0, "CarePlan": 0}
    teams_by_patient: dict[str, str] = {}
    for path in hl7_examples.examples("CareTeam"):
        team = CareTeams(db).create(SYSTEM, str(uuid.uuid4()), path.read_text())
        teams_by_patient[team.patient_id] = team.id
        accepted["CareTeam"] += 1
    for path in hl7_examples.examples("Goal"):
        Measures(db).create_goal(SYSTEM, str(uuid.uuid4()), path.read_text())
        accepted["Goal"] += 1
    refusals = []
    for path in hl7_examples.examples("CarePlan"):
        plan = json.loads(path.read_text())
        patient = fhir.reference_id(plan.get("subject", {}).get("reference"), "Patient")
        if patient and any(
            ref.get("reference", "").startswith("CareTeam/") for ref in plan.get("careTeam", [])
        ):
            team_id = (
                teams_by_patient.get(patient)
                or CareTeams(db)
                .create(
                    SYSTEM,
                    str(uuid.uuid4()),
                    json.dumps(
                        {
                            "resourceType": "CareTeam",
                            "status": "active",
                            "subject": {"reference": f"Patient/{patient}"},
                        }
                    ),
                )
                .id
            )
            plan["careTeam"] = [{"reference": f"CareTeam/{team_id}"}]
        try:
            CarePlans(db).create(SYSTEM, str(uuid.uuid4()), json.dumps(plan))
            accepted["CarePlan"] += 1
        except IopcareError as exc:
            refusals.append((path.name, exc.reason))
    assert accepted["CareTeam"] == len(hl7_examples.examples("CareTeam"))
    assert accepted["Goal"] == len(hl7_examples.examples("Goal"))
    assert accepted["CarePlan"] >= 1
    # Only reasons a clinician can act on: a completed plan is not a new one, an active one needs
    # a team and a goal, a subject must be a patient.
    assert {reason for _, reason in refusals} <= {"INVALID_ARGUMENT", "PLAN_NOT_READY"}, refusals
