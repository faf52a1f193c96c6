"""Goals of their own (ADR 0022): ownership, hoisting contained goals out of a plan and back, the
trend of a measure and each discipline's open tasks. Pure rules."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from iopcare.careplan.domain import goals
from iopcare.careplan.domain.measures import Target
from iopcare.careplan.domain.templates import check_template, draft_plan
from iopcare.careplan.template_files import load_templates
from iopcare.kit import fhir, labels
from iopcare.kit.errors import InvalidArgument

PSY = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"g{next(counter)}"


def _draft() -> dict[str, Any]:
    template = next(t for t in load_templates() if t.id == "adult-mood-si-iop")
    plan = draft_plan(template, "p1", "F32.1", "t1", date(2026, 12, 1))
    plan["meta"] = {"security": [PSY]}
    plan["activity"][1]["detail"]["goal"] = [{"reference": "#goal0"}]
    return plan


def _measure_goal(code: str) -> dict[str, object]:
    return {"target": [{"measure": {"coding": [{"system": "http://loinc.org", "code": code}]}}]}


def test_a_goal_is_owned_by_the_discipline_its_category_names() -> None:
    goal = {"category": [{"coding": [goals.discipline_coding("dietitian")]}]}
    assert goals.goal_discipline(goal) == "dietitian"
    assert goals.with_discipline(goal, "therapist") is goal  # an owner is never replaced
    assert goals.goal_discipline({"category": [{"text": "behavioral"}]}) is None


@pytest.mark.parametrize(
    ("code", "author", "owner"),
    [
        ("44261-6", None, "therapist"),  # PHQ-9
        ("44260-8", None, "psychiatrist"),  # PHQ-9 item 9
        ("29463-7", None, "dietitian"),  # body weight
        ("cows-total", None, "physician"),
        ("12345-6", None, "psychiatrist"),  # unknown measure: the team lead
        ("44261-6", "dietitian", "dietitian"),  # a clinician's own goal is theirs
        ("44261-6", "system", "therapist"),  # an EHR or service is no discipline
        ("44261-6", "patient", "therapist"),
    ],
)
def test_an_unassigned_goal_goes_to_its_author_else_the_measure_s_discipline(
    code: str, author: str | None, owner: str
) -> None:
    goal = goals.with_discipline(_measure_goal(code), author)
    assert goals.goal_discipline(goal) == owner
    assert goal["category"][-1]["coding"][0]["system"] == "http://snomed.info/sct"


def test_template_goals_name_their_discipline_and_a_template_may_choose_it() -> None:
    plan = _draft()
    owners = [goals.goal_discipline(g) for g in goals.contained_goals(plan)]
    assert owners == ["therapist", "psychiatrist", "therapist", "psychiatrist"]
    data: dict[str, Any] = {
        "id": "x",
        "title": "X",
        "weeks": 4,
        "diagnosis_prefixes": ["F50"],
        "activities": [
            {"code": "61310001", "display": "d", "description": "d", "repeat": {"frequency": 1}}
        ],
        "goals": [
            {
                "description": "d",
                "measure": "44261-6",
                "comparator": "<",
                "value": 5,
                "discipline": "dietitian",
            }
        ],
    }
    template = check_template(data)
    drafted = draft_plan(template, "p1", "F50.0", "", date(2026, 12, 1))
    assert goals.goal_discipline(goals.contained_goals(drafted)[0]) == "dietitian"
    with pytest.raises(InvalidArgument) as refused:
        check_template({**data, "goals": [{**data["goals"][0], "discipline": "chef"}]})
    assert "template.goals[0].discipline" in str(refused.value.violations)


def test_hoisting_takes_every_goal_out_of_the_plan_and_rewrites_its_references() -> None:
    plan = _draft()
    hoisted = goals.hoist_goals(plan, "p1", _ids())
    assert [goal_id for goal_id, _ in hoisted.goals] == ["g1", "g2", "g3", "g4"]
    assert "contained" not in hoisted.plan
    assert [g["reference"] for g in hoisted.plan["goal"]] == [
        "Goal/g1",
        "Goal/g2",
        "Goal/g3",
        "Goal/g4",
    ]
    assert hoisted.plan["activity"][1]["detail"]["goal"] == [{"reference": "Goal/g1"}]
    for index, (_, goal) in enumerate(hoisted.goals):
        assert "id" not in goal and goal["subject"] == {"reference": "Patient/p1"}
        assert labels.security_of(goal) == [PSY]  # the plan's labels follow its goals
        assert goal["identifier"] == [
            {"system": goals.CONTAINED_GOAL_SYSTEM, "value": f"goal{index}"}
        ]
        fhir.parse_resource(goal, "Goal")
    fhir.parse_resource(hoisted.plan, "CarePlan")
    # Other contained resources stay, their references to goals rewritten too.
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "note": [{"text": "x"}],
    }
    with_condition = {**plan, "contained": [*plan["contained"], condition]}
    kept = goals.hoist_goals(with_condition, "p1", _ids()).plan
    assert [c["id"] for c in kept["contained"]] == ["c1"]


def test_a_plan_without_contained_goals_is_left_alone_and_a_foreign_goal_is_refused() -> None:
    plan = {"resourceType": "CarePlan", "goal": [{"reference": "Goal/x"}]}
    assert goals.hoist_goals(plan, "p1", _ids()).plan is plan
    foreign = {
        "resourceType": "CarePlan",
        "contained": [
            {"resourceType": "Goal", "id": "g", "subject": {"reference": "Patient/other"}}
        ],
    }
    with pytest.raises(InvalidArgument) as refused:
        goals.hoist_goals(foreign, "p1", _ids())
    assert "fhir_json.CarePlan.contained[Goal 0].subject" in str(refused.value.violations)


def test_containing_again_reverses_hoisting() -> None:
    plan = _draft()
    hoisted = goals.hoist_goals(plan, "p1", _ids())
    stored = {
        f"Goal/{goal_id}": {**goal, "id": goal_id, "meta": {**goal["meta"], "versionId": "2"}}
        for goal_id, goal in hoisted.goals
    }
    back = goals.contain_goals(hoisted.plan, stored)
    assert back["goal"] == plan["goal"]
    assert back["activity"][1]["detail"]["goal"] == [{"reference": "#goal0"}]
    assert [c["id"] for c in back["contained"]] == ["goal0", "goal1", "goal2", "goal3"]
    assert all(
        "identifier" not in c and c["meta"] == {"security": [PSY]} for c in back["contained"]
    )
    fhir.parse_resource(back, "CarePlan")
    # A clinician's own goal (no contained-goal identifier) stays where it is.
    own = {"Goal/z": {"resourceType": "Goal", "id": "z"}}
    assert goals.contain_goals({"goal": [{"reference": "Goal/z"}]}, own) == {
        "goal": [{"reference": "Goal/z"}]
    }


@pytest.mark.parametrize(
    ("comparator", "history", "expected"),
    [
        ("<", [12.0], ""),
        ("<", [12.0, 9.0], "improving"),
        ("<", [9.0, 12.0], "worsening"),
        (">=", [80.0, 90.0], "improving"),
        (">", [90.0, 80.0], "worsening"),
        ("<", [9.0, 9.0], "no-change"),
        (None, [5.0, 4.0], "improving"),
    ],
)
def test_the_trend_reads_the_last_two_values_in_the_target_s_direction(
    comparator: str | None, history: list[float], expected: str
) -> None:
    target = Target("m", comparator, 10.0) if comparator else None
    assert goals.trend(target, history) == expected


def test_open_tasks_of_a_discipline() -> None:
    facts = [
        goals.GoalFacts("Goal/a", "PHQ-9 below 10", "therapist", True, "44261-6", False, None),
        goals.GoalFacts(
            "Goal/b", "GAD-7 below 10", "therapist", True, "70274-6", True, "worsening"
        ),
        goals.GoalFacts("Goal/c", "done", "therapist", False, "44261-6", False, None),
        goals.GoalFacts("Goal/d", "weight", "dietitian", True, "29463-7", False, None),
    ]
    activities = [
        goals.ActivityFacts("therapist", "Group therapy", "not-started", booked=False),
        goals.ActivityFacts("therapist", "Individual therapy", "not-started", booked=True),
        goals.ActivityFacts("psychiatrist", "Medication review", None, booked=False),
    ]
    today = date(2026, 12, 1)
    tasks = goals.open_tasks("therapist", facts, activities, True, date(2026, 12, 5), today)
    assert [(t.kind, t.reference) for t in tasks] == [
        ("record-measure", "Goal/a"),
        ("review-goal", "Goal/b"),
        ("schedule-activity", ""),
        ("attest-review", ""),
    ]
    assert tasks[2].text == "schedule: Group therapy"
    # A draft plan schedules nothing yet, and a review weeks away is no task.
    later = goals.open_tasks("therapist", facts, activities, False, date(2027, 1, 5), today)
    assert [t.kind for t in later] == ["record-measure", "review-goal"]


def test_sections_are_the_core_disciplines_then_other_owners() -> None:
    assert goals.section_roles([None, "therapist"]) == [
        "psychiatrist",
        "therapist",
        "dietitian",
        "physician",
    ]
    assert goals.section_roles(["case-manager", "nurse"])[4:] == ["nurse", "case-manager"]
    assert goals.activity_owner("76168009", []) == "therapist"
    assert goals.activity_owner("999", ["Case manager"]) == "case-manager"
    assert goals.activity_owner("999", ["Someone"]) is None


def test_labelled_items_follow_the_notes_privacy_rules() -> None:
    from iopcare.kit import privacy

    eth = [{"system": privacy.ACT_CODE_SYSTEM, "code": "ETH"}]
    therapist = privacy.Viewer("Practitioner/th-1", "therapist", "care-team")
    dietitian = privacy.Viewer("Practitioner/diet-1", "dietitian", "care-team")
    admin = privacy.Viewer("Practitioner/adm-1", "admin", "role:admin")
    assert all(goals.readable(v, [], "therapist") for v in (therapist, dietitian, admin))
    assert goals.readable(therapist, eth, "therapist")
    assert goals.readable(therapist, eth, "psychiatrist")  # a treating therapist reads the team's
    assert not goals.readable(dietitian, eth, "therapist")  # minimum necessary
    assert goals.readable(dietitian, eth, "dietitian")
    assert not goals.readable(admin, eth, "therapist")  # no labelled content
    restricted = [{"system": privacy.CONFIDENTIALITY_SYSTEM, "code": "R"}]
    assert not goals.readable(admin, restricted, "therapist")


def test_measures_are_followed_by_a_discipline() -> None:
    assert goals.measure_discipline("44261-6") == "therapist"
    assert goals.measure_discipline("8867-4") == "physician"  # heart rate: monitoring
    assert goals.measure_discipline("39156-5") == "dietitian"  # BMI
    assert goals.measure_discipline("14334-7") == "psychiatrist"  # lithium
    assert goals.measure_discipline("99999-9") is None
