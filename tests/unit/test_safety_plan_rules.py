"""Stanley-Brown safety plan rules (issue 12, part 3): what a plan must say, who writes it, and
the published Questionnaire. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from iopcare.kit import fhir, privacy
from iopcare.kit.errors import InvalidArgument
from iopcare.notes.domain import safety_plan as rules
from tests.support.safety import SAFETY_PLAN_QUESTIONNAIRE, SECTIONS, safety_plan


def _problems(body: dict[str, Any], patient: str = "p1") -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        rules.read_plan(body, patient)
    return [f"{v.field}: {v.description}" for v in caught.value.violations]


def test_a_complete_plan_is_read_in_the_questionnaires_order() -> None:
    body = safety_plan("p1", dict(reversed(SECTIONS.items())))
    plan = rules.read_plan(body, "p1")
    assert list(plan.sections) == [s.link_id for s in rules.SECTIONS]
    assert plan.sections["professionals"][1].startswith("988")
    assert (plan.status, plan.confidentiality) == ("completed", "N")


def test_reasons_for_living_are_optional_and_the_six_steps_required() -> None:
    optional = {k: v for k, v in SECTIONS.items() if k != "reasons-for-living"}
    assert "reasons-for-living" not in rules.read_plan(safety_plan("p1", optional), "p1").sections
    problems = _problems(safety_plan("p1", {"reasons-for-living": ["My dog"]}))
    assert len(problems) == 6
    assert all(p.startswith("fhir_json.QuestionnaireResponse.item: ") for p in problems)


def test_an_empty_answer_counts_as_missing() -> None:
    given = SECTIONS | {"coping-strategies": ["   "]}
    problems = _problems(safety_plan("p1", given))
    assert any(p.startswith("fhir_json.QuestionnaireResponse.item[1].answer[0]") for p in problems)
    assert any("coping-strategies" in p and "at least one answer" in p for p in problems)


def test_the_988_lifeline_must_be_among_the_professionals() -> None:
    (problem,) = _problems(safety_plan("p1", SECTIONS | {"professionals": ["Dr. Lee"]}))
    assert "988" in problem


def test_another_patient_as_subject_or_source_is_refused() -> None:
    assert _problems(safety_plan("p2")) == [
        "fhir_json.QuestionnaireResponse.subject: must be Patient/p1: a safety plan is about "
        "the patient it is written for"
    ]
    (problem,) = _problems(safety_plan("p1", source={"reference": "Patient/p2"}))
    assert problem.startswith("fhir_json.QuestionnaireResponse.source")


def test_another_questionnaire_status_or_section_is_refused() -> None:
    body = safety_plan("p1", status="in-progress", questionnaire="http://example.org/Q/phq9")
    body["item"].append({"linkId": "warning-signs", "answer": [{"valueString": "again"}]})
    body["item"].append({"linkId": "favourite-colour", "answer": [{"valueString": "blue"}]})
    problems = _problems(body)
    assert any(p.startswith("fhir_json.QuestionnaireResponse.questionnaire") for p in problems)
    assert any(p.startswith("fhir_json.QuestionnaireResponse.status") for p in problems)
    assert any("warning-signs is given twice" in p for p in problems)
    assert any("one of warning-signs" in p for p in problems)


def test_labels_are_validated_and_sensitive_ones_raise_confidentiality() -> None:
    labelled = safety_plan(
        "p1", meta={"security": [{"system": privacy.ACT_CODE_SYSTEM, "code": "SUD"}]}
    )
    plan = rules.read_plan(labelled, "p1")
    assert (plan.confidentiality, plan.sensitivity) == ("R", frozenset({"SUD"}))
    unknown = safety_plan(
        "p1", meta={"security": [{"system": privacy.ACT_CODE_SYSTEM, "code": "NOPE"}]}
    )
    (problem,) = _problems(unknown)
    assert problem.startswith("fhir_json.QuestionnaireResponse.meta.security")


def test_only_the_therapist_psychiatrist_or_psychologist_writes_it() -> None:
    assert rules.may_write({"therapist"}) and rules.may_write({"dietitian", "psychiatrist"})
    assert not rules.may_write({"dietitian", "physician", "nurse", "case-manager"})
    assert not rules.may_write(set())


def test_the_published_questionnaire_is_valid_r4_and_names_every_section() -> None:
    questionnaire = fhir.parse_resource(rules.questionnaire(), "Questionnaire")
    assert questionnaire.url == SAFETY_PLAN_QUESTIONNAIRE
    items = {i.linkId: i.required for i in questionnaire.item}
    assert items == {s.link_id: s.required for s in rules.SECTIONS}
    assert list(items) == list(SECTIONS)


def test_a_new_version_keeps_every_label_and_the_stricter_confidentiality() -> None:
    plan = rules.read_plan(safety_plan("p1"), "p1")
    previous = [
        {"system": privacy.CONFIDENTIALITY_SYSTEM, "code": "R"},
        {"system": privacy.ACT_CODE_SYSTEM, "code": "SUD"},
    ]
    kept = rules.kept_labels(plan, previous)
    assert (kept.confidentiality, kept.sensitivity) == ("R", frozenset({"SUD"}))
    very = rules.kept_labels(
        rules.read_plan(
            safety_plan(
                "p1", meta={"security": [{"system": privacy.CONFIDENTIALITY_SYSTEM, "code": "V"}]}
            ),
            "p1",
        ),
        previous,
    )
    assert very.confidentiality == "V"
