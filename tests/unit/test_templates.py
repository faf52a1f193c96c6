"""Program templates: every file in the templates folder loads, validates and drafts a plan that
passes the activation rule once a care team is named; diagnoses select a template with a stated
precedence; a diagnosis no program covers gets the general IOP plan with a note, never nothing."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from iopcare.careplan import codes
from iopcare.careplan.domain.model import check_ready_to_be_active, check_revision
from iopcare.careplan.domain.templates import (
    ICD10CM,
    check_template,
    diagnoses_in,
    draft_plan,
    template_for,
)
from iopcare.careplan.fhir_map import draft_from_fhir, review_due
from iopcare.careplan.template_files import GENERAL, SHIPPED, load_template, load_templates
from iopcare.kit import fhir
from iopcare.kit.errors import FailedPrecondition, InvalidArgument

START = date(2026, 12, 1)
TEMPLATE_FILES = sorted(SHIPPED.glob("*.json"))


@pytest.mark.parametrize(
    ("diagnosis", "template"),
    [
        ("F10.20", "adult-sud-iop"),
        ("f11.23", "adult-sud-iop"),
        ("F50.00", "eating-disorder-iop"),
        ("F32.2", "adult-mood-si-iop"),
        ("F33.1", "adult-mood-si-iop"),
        ("F41.1", "adult-mood-si-iop"),
        ("R45.851", "adult-mood-si-iop"),
        ("F31.81", "bipolar-iop"),
        ("F43.10", "ptsd-iop"),
        ("F34.81", "adolescent-mood-iop"),
        ("J45.909", "general-iop"),
    ],
)
def test_the_diagnosis_picks_the_template(diagnosis: str, template: str) -> None:
    assert template_for(load_templates(), diagnosis).id == template


@pytest.mark.parametrize(
    ("diagnosis", "others", "template"),
    [
        # A template whose every required group the diagnoses meet comes first, whichever
        # diagnosis was asked for.
        ("F10.20", ["F32.1"], "co-occurring-iop"),
        ("F32.1", ["F10.20"], "co-occurring-iop"),
        ("F43.10", ["F11.20"], "co-occurring-iop"),
        ("F12.20", ["F91.1"], "adolescent-sud-iop"),
        # The requested diagnosis comes before the others.
        ("F50.00", ["F43.10"], "eating-disorder-iop"),
        # An unmatched requested diagnosis: the others in order (a handoff's Conditions).
        ("J45.909", ["Z79.899", "F31.30", "F43.10"], "bipolar-iop"),
        ("J45.909", ["E11.9"], "general-iop"),
    ],
)
def test_precedence_when_several_diagnoses_are_known(
    diagnosis: str, others: list[str], template: str
) -> None:
    assert template_for(load_templates(), diagnosis, others).id == template


def test_an_unmatched_diagnosis_gets_the_general_plan_with_a_note() -> None:
    template = template_for(load_templates(), " j45.909 ", ["E11.9", "J45.909"])
    plan = draft_plan(template, "p1", "J45.909", "t1", START)
    assert template.fallback
    assert plan["note"] == [
        {
            "text": "No program template matched the diagnoses (J45.909, E11.9); the general "
            "IOP plan was used. Review it against the patient's needs."
        }
    ]
    codes_in_plan = {a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]}
    # Group and individual therapy, psychiatric evaluation and medication, case management.
    assert {"76168009", "75516001", "10197000", "182836005", "737492002"} <= codes_in_plan
    measures = {g["target"][0]["measure"]["coding"][0]["code"] for g in plan["contained"]}
    assert measures == {codes.PHQ9_TOTAL, codes.GAD7_TOTAL}


def test_no_diagnosis_named_gets_the_general_plan_unless_the_others_select_one() -> None:
    template = template_for(load_templates(), "", [])
    plan = draft_plan(template, "p1", "", "t1", START)
    assert template.fallback and plan["activity"]
    assert plan["note"] == [
        {
            "text": "No ICD-10-CM diagnosis was given; the general IOP plan was used. Review "
            "it against the patient's needs."
        }
    ]
    assert plan["description"] == (
        "Drafted from the General IOP template (no ICD-10-CM diagnosis given)."
    )
    # The other diagnoses (a draft's contained Conditions) still select a program.
    assert not template_for(load_templates(), " ", ["F10.20"]).fallback


def test_a_program_template_says_nothing_of_the_fallback() -> None:
    plan = draft_plan(template_for(load_templates(), "F10.20"), "p1", "F10.20", None, START)
    assert "note" not in plan


def test_no_template_only_when_no_fallback_is_given() -> None:
    programs = [t for t in load_templates() if not t.fallback]
    with pytest.raises(FailedPrecondition) as caught:
        template_for(programs, "J45.909")
    assert caught.value.reason == "NO_TEMPLATE"


def test_a_program_folder_without_a_general_plan_gets_the_shipped_one(tmp_path: Path) -> None:
    shutil.copy(SHIPPED / "adult-sud-iop.json", tmp_path)
    loaded = load_templates(tmp_path)
    assert [t.id for t in loaded] == ["adult-sud-iop", "general-iop"]
    assert template_for(loaded, "F50.00").id == "general-iop"


def test_the_inbound_conditions_are_the_other_diagnoses() -> None:
    additions = {
        "contained": [
            {
                "resourceType": "Condition",
                "code": {"coding": [{"system": ICD10CM, "code": "F31.9"}]},
            },
            {"resourceType": "Condition", "code": {"coding": [{"system": "x", "code": "F10.2"}]}},
            {"resourceType": "MedicationStatement", "code": {"coding": [{"code": "F12"}]}},
            {"resourceType": "Condition", "code": "not an object"},
        ]
    }
    assert diagnoses_in(additions) == ["F31.9"]
    # Malformed additions are the additions check's to refuse, with the field (not a crash here).
    for wrong in ({}, {"contained": 5}, {"contained": "F31"}, {"contained": {"code": "F31"}}):
        assert diagnoses_in(wrong) == []


def _template_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SHIPPED / "adult-sud-iop.json").read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ""}, "t.id"),
        ({"weeks": "12"}, "t.weeks"),
        ({"diagnosis_prefixes": []}, "t.diagnosis_prefixes"),
        ({"activities": []}, "t.activities"),
        (
            {"goals": [{"description": "x", "measure": "44261-6", "comparator": "=", "value": 1}]},
            "t.goals[0].comparator",
        ),
        (
            {
                "goals": [
                    {"description": "x", "measure": "44261-6", "comparator": "<", "value": "1"}
                ]
            },
            "t.goals[0].value",
        ),
        (
            {
                "goals": [
                    {
                        "description": "x",
                        "system": "program",
                        "measure": "made-up",
                        "comparator": "<",
                        "value": 1,
                    }
                ]
            },
            "t.goals[0].measure",
        ),
        ({"requires_all": [[]]}, "t.requires_all"),
        ({"review_days": 0}, "t.review_days"),
    ],
)
def test_an_invalid_template_is_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_template(_template_json(**changes), source="t")
    assert field in [v.field for v in caught.value.violations]


def test_a_performer_must_be_the_discipline_that_owns_the_activity() -> None:
    data = _template_json()
    data["activities"][0]["performer_role"] = "dietitian"  # group psychotherapy: the therapist's
    data["activities"][1]["performer_role"] = "chef"
    with pytest.raises(InvalidArgument) as caught:
        check_template(data, source="t")
    assert [v.field for v in caught.value.violations] == [
        "t.activities[0].performer_role",
        "t.activities[1].performer_role",
    ]


def test_exactly_one_shipped_general_plan() -> None:
    assert [t.id for t in load_templates() if t.fallback] == ["general-iop"]
    assert load_template(GENERAL).fallback


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.stem)
def test_every_template_file_loads_validates_and_drafts_an_activatable_plan(path: Path) -> None:
    template = load_template(path)
    assert template.id == path.stem  # the file is named after its template
    diagnosis = template.diagnosis_prefixes[0] if template.diagnosis_prefixes else "J45.909"
    raw = draft_plan(template, "p1", diagnosis, "t1", START)
    plan = fhir.parse_resource(raw)  # a valid R4 CarePlan
    draft = draft_from_fhir(plan)
    assert draft.status == "draft"
    assert (draft.care_teams, draft.goals) == (1, len(template.goals))
    assert len(draft.activities) == len(template.activities)
    for activity, source in zip(raw["activity"], template.activities, strict=True):
        detail = activity["detail"]
        assert detail["scheduledTiming"]["repeat"]["boundsPeriod"]["start"] == START.isoformat()
        owner = codes.ACTIVITY_OWNERS[detail["code"]["coding"][0]["code"]]  # owned by a discipline
        if "performer_role" in source:
            assert detail["performer"] == [{"display": codes.ROLE_DISPLAY[owner]}]
    for goal in raw["contained"]:
        target = goal["target"][0]
        coding = target["measure"]["coding"][0]
        assert coding["system"] in (codes.LOINC, codes.MEASURE_SYSTEM)
        if coding["system"] == codes.MEASURE_SYSTEM:
            assert coding["code"] in codes.PROGRAM_MEASURES
        assert target["dueDate"] == (START + timedelta(weeks=template.weeks)).isoformat()
    if template.review_days:
        assert review_due(plan) == START + timedelta(days=template.review_days)
    # The activation rule: draft -> active passes with the care team named ...
    active = draft_from_fhir(fhir.parse_resource({**raw, "status": "active"}))
    assert check_revision(draft, active) == "activate"
    # ... and without one it is the only thing missing.
    no_team = {k: v for k, v in raw.items() if k != "careTeam"}
    with pytest.raises(FailedPrecondition) as caught:
        check_ready_to_be_active(draft_from_fhir(fhir.parse_resource(no_team)))
    assert caught.value.reason == "PLAN_NOT_READY"
    assert caught.value.metadata["missing"] == "a care team"
