"""The Stanley-Brown safety plan (issue 12, part 3): the published Questionnaire, what a plan
(a QuestionnaireResponse to it) must say, who writes one, and when it is due for review. Pure
rules, no I/O (docs/decisions/0020-safety-plan-as-questionnaire-response.md).

Stanley B, Brown GK. Safety Planning Intervention: a brief intervention to mitigate suicide risk.
Cogn Behav Pract 2012;19(2):256-64. The six steps, in order, and the optional reasons for living:
warning signs; internal coping strategies; people and social settings that distract; people to
ask for help; professionals and agencies to contact in a crisis (the 988 Suicide & Crisis
Lifeline among them); making the environment safe (means restriction).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from iopcare.kit import privacy
from iopcare.kit.errors import FieldViolations
from iopcare.notes.domain.text import has_forbidden_characters

QUESTIONNAIRE_ID = "stanley-brown-safety-plan"
QUESTIONNAIRE_URL = f"https://iopcare.org/fhir/Questionnaire/{QUESTIONNAIRE_ID}"
QUESTIONNAIRE_VERSION = "1"


@dataclass(frozen=True)
class Section:
    link_id: str
    text: str
    required: bool = True


SECTIONS = (
    Section(
        "warning-signs",
        "Step 1. Warning signs (thoughts, images, mood, situations, behaviour) that a crisis may "
        "be developing",
    ),
    Section(
        "coping-strategies",
        "Step 2. Internal coping strategies: things I can do on my own to take my mind off my "
        "problems",
    ),
    Section("social-distraction", "Step 3. People and social settings that provide distraction"),
    Section("help-contacts", "Step 4. People I can ask for help (name and phone)"),
    Section(
        "professionals",
        "Step 5. Professionals or agencies I can contact during a crisis (clinician, urgent care, "
        "and the 988 Suicide & Crisis Lifeline: call or text 988)",
    ),
    Section(
        "environment-safe",
        "Step 6. Making the environment safe (means restriction: firearms, medications, alcohol)",
    ),
    Section(
        "reasons-for-living",
        "The one thing most important to me and worth living for",
        required=False,
    ),
)
BY_LINK = {s.link_id: s for s in SECTIONS}
#: The 988 Suicide & Crisis Lifeline must be among the professionals and agencies.
LIFELINE = "988"
#: A plan's statuses as a QuestionnaireResponse: completed (a plan in force) or amended.
STATUSES = ("completed", "amended")
MAX_ANSWERS = 20
MAX_ANSWER = 500

#: Who writes a patient's safety plan: the clinicians who build it with the patient, in these
#: roles on one of the patient's active care teams (the therapist and the psychiatrist own it;
#: a psychologist does the therapy where there is one). Every team member reads it.
WRITER_ROLES = frozenset({"therapist", "psychiatrist", "psychologist"})


@dataclass(frozen=True)
class SafetyPlan:
    """A safety plan's content: answers by section (in the Questionnaire's order) and labels."""

    patient_id: str
    sections: dict[str, tuple[str, ...]]
    status: str = "completed"
    confidentiality: str = "N"
    sensitivity: frozenset[str] = frozenset()


def may_write(team_roles: set[str]) -> bool:
    """Whether a caller on the patient's team in these roles writes the safety plan."""
    return bool(team_roles & WRITER_ROLES)


def _answers(item: Any, where: str, problems: FieldViolations) -> tuple[str, ...]:
    found: list[str] = []
    answers = item.get("answer") or []
    if item.get("item"):
        problems.add(f"{where}.item", "a section has no sub-items")
    if not isinstance(answers, list) or len(answers) > MAX_ANSWERS:
        problems.add(f"{where}.answer", f"at most {MAX_ANSWERS} answers")
        return ()
    for j, answer in enumerate(answers):
        text = answer.get("valueString") if isinstance(answer, dict) else None
        extra = set(answer) - {"valueString"} if isinstance(answer, dict) else set()
        if not isinstance(text, str) or extra:
            problems.add(f"{where}.answer[{j}]", "a valueString (the plan's words)")
        elif not text.strip() or len(text) > MAX_ANSWER or has_forbidden_characters(text):
            problems.add(
                f"{where}.answer[{j}].valueString",
                f"1 to {MAX_ANSWER} characters of text, no control characters",
            )
        else:
            found.append(text.strip())
    return tuple(found)


def _subject_problems(resource: dict[str, Any], patient_id: str, problems: FieldViolations) -> None:
    subject = (resource.get("subject") or {}).get("reference")
    if subject != f"Patient/{patient_id}":
        problems.add(
            "fhir_json.QuestionnaireResponse.subject",
            f"must be Patient/{patient_id}: a safety plan is about the patient it is written for",
        )
    source = (resource.get("source") or {}).get("reference")
    if source is not None and source != f"Patient/{patient_id}":
        problems.add(
            "fhir_json.QuestionnaireResponse.source",
            "the patient the plan was made with, or none (never another patient)",
        )


def read_plan(resource: dict[str, Any], patient_id: str) -> SafetyPlan:
    """The safety plan a QuestionnaireResponse to the published Questionnaire says, or
    InvalidArgument naming every problem (FHIR element paths): another questionnaire, another
    patient, a status other than completed or amended, an unknown or repeated section, a required
    section without an answer, the 988 Lifeline missing, invalid labels."""
    problems = FieldViolations()
    if resource.get("resourceType") != "QuestionnaireResponse":
        problems.add("fhir_json.resourceType", "QuestionnaireResponse")
        problems.raise_if_any("the safety plan cannot be recorded")
    canonical = str(resource.get("questionnaire") or "")
    if canonical not in (QUESTIONNAIRE_URL, f"{QUESTIONNAIRE_URL}|{QUESTIONNAIRE_VERSION}"):
        problems.add("fhir_json.QuestionnaireResponse.questionnaire", QUESTIONNAIRE_URL)
    status = resource.get("status")
    if status not in STATUSES:
        problems.add(
            "fhir_json.QuestionnaireResponse.status",
            "completed or amended (a plan in progress is not recorded)",
        )
    _subject_problems(resource, patient_id, problems)
    sections: dict[str, tuple[str, ...]] = {}
    for i, item in enumerate(resource.get("item") or []):
        where = f"fhir_json.QuestionnaireResponse.item[{i}]"
        link = item.get("linkId") if isinstance(item, dict) else None
        if link not in BY_LINK:
            problems.add(f"{where}.linkId", f"one of {', '.join(BY_LINK)}")
        elif link in sections:
            problems.add(f"{where}.linkId", f"{link} is given twice")
        else:
            sections[link] = _answers(item, where, problems)
    for section in SECTIONS:
        if section.required and not sections.get(section.link_id):
            problems.add(
                "fhir_json.QuestionnaireResponse.item",
                f"{section.link_id} ({section.text.split('.')[0]}) needs at least one answer",
            )
    professionals = sections.get("professionals") or ()
    if professionals and not any(LIFELINE in answer for answer in professionals):
        problems.add(
            "fhir_json.QuestionnaireResponse.item",
            "professionals must list the 988 Suicide & Crisis Lifeline (call or text 988)",
        )
    confidentiality, sensitivity = _labels(resource, problems)
    problems.raise_if_any("the safety plan cannot be recorded")
    return SafetyPlan(
        patient_id,
        {s.link_id: sections[s.link_id] for s in SECTIONS if sections.get(s.link_id)},
        str(status),
        confidentiality,
        sensitivity,
    )


def _labels(resource: dict[str, Any], problems: FieldViolations) -> tuple[str, frozenset[str]]:
    confidentiality = "N"
    sensitivity: set[str] = set()
    for label in (resource.get("meta") or {}).get("security") or []:
        system, code = label.get("system"), label.get("code")
        if system == privacy.CONFIDENTIALITY_SYSTEM:
            confidentiality = str(code)
        elif system == privacy.ACT_CODE_SYSTEM:
            sensitivity.add(str(code))
        else:
            problems.add(
                "fhir_json.QuestionnaireResponse.meta.security",
                "v3-Confidentiality or v3-ActCode labels only",
            )
    for problem in privacy.check_labels(confidentiality, sensitivity):
        problems.add("fhir_json.QuestionnaireResponse.meta.security", problem)
    return privacy.effective_confidentiality(confidentiality, sensitivity), frozenset(sensitivity)


def kept_labels(plan: SafetyPlan, previous: list[dict[str, Any]]) -> SafetyPlan:
    """The plan keeping the labels of its previous version (`meta.security` codings): labels
    only go up (42 CFR 2.12(d): restrictions stay with the record), so every sensitivity label
    stays and the stricter confidentiality wins."""
    order = privacy.CONFIDENTIALITY
    sensitivity = set(plan.sensitivity)
    confidentiality = plan.confidentiality
    for label in previous:
        code = str(label.get("code"))
        if label.get("system") == privacy.ACT_CODE_SYSTEM:
            sensitivity.add(code)
        elif code in order and order.index(code) > order.index(confidentiality):
            confidentiality = code
    return replace(
        plan,
        sensitivity=frozenset(sensitivity),
        confidentiality=privacy.effective_confidentiality(confidentiality, sensitivity),
    )


def questionnaire() -> dict[str, Any]:
    """The published Questionnaire every safety plan answers (served at Questionnaire/<id>)."""
    return {
        "resourceType": "Questionnaire",
        "id": QUESTIONNAIRE_ID,
        "url": QUESTIONNAIRE_URL,
        "version": QUESTIONNAIRE_VERSION,
        "name": "StanleyBrownSafetyPlan",
        "title": "Stanley-Brown Safety Plan",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "iopcare",
        "description": (
            "A patient's suicide safety plan, written with the patient by the therapist or "
            "psychiatrist and reviewed after every crisis (Stanley B, Brown GK, Cogn Behav Pract "
            "2012;19:256-64). Each step lists the patient's own words."
        ),
        "item": [
            {
                "linkId": s.link_id,
                "text": s.text,
                "type": "string",
                "required": s.required,
                "repeats": True,
            }
            for s in SECTIONS
        ],
    }
