"""Codes the care plan service uses, in one place (FHIR code systems, SNOMED CT)."""

from __future__ import annotations

# Shared vocabulary: team roles and privileged roles are the same in every service.
from iopcare.kit.access import PRIVILEGED_ROLES, SNOMED, TEAM_ROLE_BY_CODE, TEAM_ROLES

__all__ = ["PRIVILEGED_ROLES", "SNOMED", "TEAM_ROLES", "TEAM_ROLE_BY_CODE"]

#: http://hl7.org/fhir/request-status (CarePlan.status)
PLAN_STATUSES = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
#: Statuses a plan may be created in; the others are reached through its lifecycle.
CREATABLE_STATUSES = frozenset({"draft", "active"})
#: http://hl7.org/fhir/request-intent (CarePlan.intent)
PLAN_INTENTS = frozenset({"proposal", "plan", "order", "option"})
#: http://hl7.org/fhir/care-plan-activity-status
ACTIVITY_STATUSES = frozenset(
    {
        "not-started",
        "scheduled",
        "in-progress",
        "on-hold",
        "completed",
        "cancelled",
        "stopped",
        "unknown",
        "entered-in-error",
    }
)

#: US Core's CarePlan category (every US Core CarePlan carries it): an assessment and plan of
#: treatment.
US_CORE_ASSESS_PLAN = {
    "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
    "code": "assess-plan",
}

#: Plans in these statuses are closed: no further revision (FHIR request-status).
CLOSED_STATUSES = frozenset({"completed", "revoked", "entered-in-error"})

#: The plan lifecycle: (from, to) -> the name of the transition.
TRANSITIONS = {
    ("draft", "active"): "activate",
    ("draft", "revoked"): "revoke",
    ("active", "on-hold"): "suspend",
    ("on-hold", "active"): "resume",
    ("active", "completed"): "complete",
    ("on-hold", "completed"): "complete",
    ("active", "revoked"): "revoke",
    ("on-hold", "revoked"): "revoke",
}
#: Any plan recorded by mistake can be marked so (and is then closed).
ENTER_IN_ERROR = "enter-in-error"

#: Which discipline owns an activity, by its SNOMED CT code (CarePlan.activity.detail.code).
ACTIVITY_OWNERS = {
    "76168009": "therapist",  # Group psychotherapy
    "75516001": "therapist",  # Psychotherapy (individual)
    "182836005": "psychiatrist",  # Review of medication
    "61310001": "dietitian",  # Nutrition education
    # The physician's medical activities (issue 12): vitals, labs and urine drug screens.
    "61746007": "physician",  # Taking patient vital signs
    "15220000": "physician",  # Laboratory test
    "310627008": "physician",  # Urine drug screening
    # Program templates (issue 13): the intake evaluation and the case manager's coordination.
    "10197000": "psychiatrist",  # Psychiatric interview and evaluation
    "737492002": "case-manager",  # Outpatient care management
}

#: How a template names a performing discipline (CarePlan.activity.detail.performer.display).
ROLE_DISPLAY = {role: display for role, (_, display) in TEAM_ROLES.items()}

#: Top-level CarePlan elements an update mask may name; identity and subject are not among them.
MASKABLE_ELEMENTS = frozenset(
    {
        "text",
        "contained",
        "extension",
        "modifierExtension",
        "identifier",
        "instantiatesCanonical",
        "instantiatesUri",
        "basedOn",
        "replaces",
        "partOf",
        "status",
        "intent",
        "category",
        "title",
        "description",
        "encounter",
        "period",
        "created",
        "author",
        "contributor",
        "careTeam",
        "addresses",
        "supportingInfo",
        "goal",
        "activity",
        "note",
        "implicitRules",
        "language",
    }
)

#: Top-level CareTeam elements an update mask may name; identity and subject are not among them.
TEAM_MASKABLE_ELEMENTS = frozenset(
    {
        "text",
        "contained",
        "extension",
        "modifierExtension",
        "identifier",
        "status",
        "category",
        "name",
        "encounter",
        "period",
        "participant",
        "reasonCode",
        "reasonReference",
        "managingOrganization",
        "telecom",
        "note",
        "implicitRules",
        "language",
    }
)

#: http://hl7.org/fhir/care-team-status
TEAM_STATUSES = frozenset({"proposed", "active", "suspended", "inactive", "entered-in-error"})
TEAM_CREATABLE_STATUSES = frozenset({"proposed", "active"})
TEAM_CLOSED_STATUSES = frozenset({"inactive", "entered-in-error"})
TEAM_TRANSITIONS = {
    ("proposed", "active"): "activate",
    ("proposed", "inactive"): "deactivate",
    ("active", "suspended"): "suspend",
    ("suspended", "active"): "resume",
    ("active", "inactive"): "deactivate",
    ("suspended", "inactive"): "deactivate",
}
#: Who a CareTeam may list as members (R4 CareTeam.participant.member).
TEAM_MEMBER_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Organization", "CareTeam"}
)
#: Roles that may create and manage any patient's care team (intake, coordination, the handoff
#: intake acting as `system`). A psychiatrist, as team lead, may manage a team they are on.
TEAM_MANAGER_ROLES = frozenset({"case-manager", "psychiatrist", "admin", "service"})
SOURCE = "/iopcare/careplan"
EVENT_TEAM_CREATED = "iopcare.careplan.careteam.created.v1"
EVENT_TEAM_UPDATED = "iopcare.careplan.careteam.updated.v1"
#: Every event type that carries a CareTeam (the other services project its memberships).
TEAM_EVENTS = (EVENT_TEAM_CREATED, EVENT_TEAM_UPDATED)
EVENT_CREATED = "iopcare.careplan.created.v1"
EVENT_UPDATED = "iopcare.careplan.updated.v1"
#: The event type of each kind of revision; a plain edit is `updated`.
EVENT_FOR_CHANGE = {
    "update": EVENT_UPDATED,
    "activate": "iopcare.careplan.activated.v1",
    "suspend": "iopcare.careplan.suspended.v1",
    "resume": "iopcare.careplan.resumed.v1",
    "complete": "iopcare.careplan.completed.v1",
    "revoke": "iopcare.careplan.revoked.v1",
    ENTER_IN_ERROR: "iopcare.careplan.entered-in-error.v1",
}
#: Every event type careplan emits about a plan (consumers subscribe to these).
PLAN_EVENTS = frozenset({EVENT_CREATED, *EVENT_FOR_CHANGE.values()})


# Measurement-based care -------------------------------------------------------------------------
LOINC = "http://loinc.org"
PHQ9_TOTAL = "44261-6"  # Patient Health Questionnaire 9 item (PHQ-9) total score
PHQ9_ITEM9 = "44260-8"  # Thoughts that you would be better off dead, or of hurting yourself
GAD7_TOTAL = "70274-6"  # Generalized anxiety disorder 7 item (GAD-7) total score
AUDIT_C_TOTAL = "75626-2"  # Total score [AUDIT-C]
BODY_WEIGHT = "29463-7"  # Body weight
#: Our own measures, for what no LOINC code names: the share of a patient's IOP sessions they
#: attended (percent of sessions with recorded attendance), measured from scheduling's events.
MEASURE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/measure"
ATTENDANCE_RATE = "attendance-rate"
#: Withdrawal scales: no LOINC code for their totals could be verified
#: (docs/clinical-thresholds.md), so the program's measure code system names them.
CIWA_AR_TOTAL = "ciwa-ar-total"
COWS_TOTAL = "cows-total"
#: Template goals' own measures (docs/templates.md): no LOINC code for a C-SSRS screen's risk
#: level could be verified, so it is 0 none, 1 low, 2 moderate, 3 high (the screener's triage);
#: the share of days with a mood chart entry (percent) has none either.
CSSRS_SCREEN_RISK = "cssrs-screen-risk"
MOOD_CHART_COMPLETION = "mood-chart-completion"
#: The dietitian's measures (docs/nutrition.md): no LOINC code for them could be verified, so the
#: program names them: percent of expected body weight, a supported meal's completion (percent,
#: one Observation per meal) and the day's counts of eating-disorder behaviours.
PERCENT_EBW = "percent-expected-body-weight"
MEAL_COMPLETION = "meal-completion"
BINGE_COUNT = "binge-episodes"
PURGE_COUNT = "purge-episodes"
EXERCISE_COUNT = "compensatory-exercise-episodes"
NUTRITION_MEASURES = frozenset(
    {PERCENT_EBW, MEAL_COMPLETION, BINGE_COUNT, PURGE_COUNT, EXERCISE_COUNT}
)
#: Orthostatic change, standing minus lying (heart rate /min, systolic mm[Hg]), as the physician
#: works it out from lying and standing vitals: no LOINC code for the change could be verified.
ORTHOSTATIC_HR_CHANGE = "orthostatic-heart-rate-change"
ORTHOSTATIC_SYSTOLIC_CHANGE = "orthostatic-systolic-change"
PROGRAM_MEASURES = frozenset(
    {
        ATTENDANCE_RATE,
        CIWA_AR_TOTAL,
        COWS_TOTAL,
        CSSRS_SCREEN_RISK,
        MOOD_CHART_COMPLETION,
        ORTHOSTATIC_HR_CHANGE,
        ORTHOSTATIC_SYSTOLIC_CHANGE,
        *NUTRITION_MEASURES,
    }
)
#: Outcome measures recorded before monitoring (issue 12) came: accepted with any shape (a meal's
#: completion names its meal in a component).
KNOWN_MEASURES = frozenset(
    {PHQ9_TOTAL, GAD7_TOTAL, AUDIT_C_TOTAL, BODY_WEIGHT, ATTENDANCE_RATE, MEAL_COMPLETION}
)
#: A C-SSRS screen's items, components of its `cssrs-screen-risk` Observation (domain/cssrs.py).
CSSRS_ITEMS = (*(f"cssrs-{n}" for n in range(1, 7)), "cssrs-6-recent")
#: Program codes a measure or a component may name.
PROGRAM_CODES = PROGRAM_MEASURES | frozenset(CSSRS_ITEMS)
#: LOINC answer codes of PHQ-9 items, to their score.
PHQ_ANSWER_SCORES = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
#: LOINC yes/no answers (C-SSRS items): LA33-6 Yes, LA32-8 No.
YES_NO_ANSWERS = frozenset({"LA33-6", "LA32-8"})
#: A PHQ-9 total at or above this is severe depression (Kroenke 2001) and raises a crisis event.
PHQ9_SEVERE = 20
#: Observation statuses a recorded measure may have (http://hl7.org/fhir/observation-status).
MEASURE_STATUSES = frozenset({"preliminary", "final", "amended", "corrected"})
#: Goal lifecycle (http://hl7.org/fhir/goal-status) and achievement codes.
GOAL_STATUSES = frozenset(
    {
        "proposed",
        "planned",
        "accepted",
        "active",
        "on-hold",
        "completed",
        "cancelled",
        "entered-in-error",
        "rejected",
    }
)
GOAL_OPEN_STATUSES = frozenset({"proposed", "planned", "accepted", "active", "on-hold"})
GOAL_ACHIEVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-achievement"

EVENT_GOAL_CREATED = "iopcare.careplan.goal.created.v1"
EVENT_GOAL_UPDATED = "iopcare.careplan.goal.updated.v1"
EVENT_MEASURE_RECORDED = "iopcare.careplan.measure.recorded.v1"
#: A measure that signals danger (PHQ-9 item 9 above 0, or a severe total): notes raises an
#: urgent alert to the psychiatrist and the therapist of the patient's team. A monitoring measure
#: crossing a program threshold (issue 12) raises it too, as a `medical` alert to the physician
#: and the psychiatrist: the payload (the Observation) then carries ALERT_EXTENSION.
EVENT_CRISIS = "iopcare.careplan.crisis.v1"
#: On the crisis event's Observation only (never on the stored one): why the event was raised.
#: Sub-extensions: kind (psychiatric | medical), severity, measure (a code), value, unit,
#: reason (text) and role (repeating: who must hear of it).
ALERT_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/measure-alert"


# Enrolment and level of care ---------------------------------------------------------------------
#: http://hl7.org/fhir/episode-of-care-status
EPISODE_STATUSES = frozenset(
    {"planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error"}
)
#: Episodes during which the program's assignment of a case manager holds (team enrolment).
EPISODE_OPEN_STATUSES = frozenset({"planned", "waitlist", "active", "onhold"})
#: Levels of care, least to most intensive (ASAM-style continuum; IOP is ASAM level 2.1).
LEVELS_OF_CARE = ("outpatient", "iop", "php", "residential", "inpatient")
PROGRAM_LEVEL = "iop"
LEVEL_SYSTEM = "https://iopcare.org/fhir/CodeSystem/level-of-care"
LEVEL_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/level-of-care"

EVENT_EPISODE = {
    "create": "iopcare.careplan.episode.created.v1",
    "admit": "iopcare.careplan.episode.admitted.v1",
    "level-change": "iopcare.careplan.episode.level-changed.v1",
    "step-down": "iopcare.careplan.episode.stepped-down.v1",
    "step-up": "iopcare.careplan.episode.stepped-up.v1",
    "return": "iopcare.careplan.episode.returned.v1",
    "discharge": "iopcare.careplan.episode.discharged.v1",
    "cancel": "iopcare.careplan.episode.cancelled.v1",
}


# Plan reviews ------------------------------------------------------------------------------------
#: When the team next reviews the plan (CarePlan extension, valueDate).
NEXT_REVIEW_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/next-review-due"
REVIEW_OUTCOMES = frozenset({"continue", "revise", "step-down", "step-up", "discharge"})
EVENT_REVIEWED = "iopcare.careplan.reviewed.v1"
EVENT_REVIEW_DUE_NOW = "iopcare.careplan.review-due.v1"


# Medications (issue 12, part 1; docs/medications.md) ---------------------------------------------
#: A MedicationStatement or MedicationRequest created (by a prescriber, or by a reconciliation
#: decision) or revised; the payload is the resource as stored.
EVENT_MEDICATION_CREATED = "iopcare.careplan.medication.created.v1"
EVENT_MEDICATION_UPDATED = "iopcare.careplan.medication.updated.v1"
#: Inbound medications still unreconciled past the program's deadline: the payload is the team's
#: Task (for the patient, focus the plan, counts only).
EVENT_RECONCILIATION_OVERDUE = "iopcare.careplan.medication-reconciliation.overdue.v1"


# Registry ----------------------------------------------------------------------------------------
#: Roles that register patients (intake) and look them up by identifier.
REGISTRY_ROLES = frozenset({"case-manager", "admin", "system", "service"})
EVENT_PATIENT_CREATED = "iopcare.careplan.patient.created.v1"
EVENT_PATIENT_UPDATED = "iopcare.careplan.patient.updated.v1"
EVENT_PRACTITIONER_CREATED = "iopcare.careplan.practitioner.created.v1"
EVENT_PRACTITIONER_ROLE_CREATED = "iopcare.careplan.practitioner-role.created.v1"
EVENT_RELATED_PERSON_CREATED = "iopcare.careplan.related-person.created.v1"


# Nutrition (issue 13, part 2) -------------------------------------------------------------------
#: http://hl7.org/fhir/request-status (NutritionOrder.status)
NUTRITION_ORDER_STATUSES = PLAN_STATUSES
NUTRITION_ORDER_CREATABLE = frozenset({"draft", "active"})
#: Roles that write a patient's nutrition plan: the dietitian who owns it, the psychiatrist as
#: team lead (as for a dietitian's activity, codes.ACTIVITY_OWNERS).
NUTRITION_WRITERS = frozenset({"dietitian", "psychiatrist"})
#: Top-level NutritionOrder elements an update mask may name; identity and patient are not.
NUTRITION_MASKABLE_ELEMENTS = frozenset(
    {
        "text",
        "extension",
        "identifier",
        "instantiatesCanonical",
        "instantiatesUri",
        "instantiates",
        "status",
        "intent",
        "encounter",
        "dateTime",
        "orderer",
        "allergyIntolerance",
        "foodPreferenceModifier",
        "excludeFoodModifier",
        "oralDiet",
        "supplement",
        "enteralFormula",
        "note",
    }
)
EVENT_NUTRITION_ORDER_CREATED = "iopcare.careplan.nutrition-order.created.v1"
EVENT_NUTRITION_ORDER_UPDATED = "iopcare.careplan.nutrition-order.updated.v1"
#: The dietitian's individual weight target on a NutritionOrder: sub-extensions `expected`
#: (valueQuantity, kg: the expected body weight, 100 %) and `low`, `high` (valueDecimal: the
#: target range in percent of it).
WEIGHT_TARGET_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/weight-target"
#: The meal a supported-meal Observation is about (a component's code and its value's system).
MEAL_SYSTEM = "https://iopcare.org/fhir/CodeSystem/meal"
MEAL_COMPONENT = "meal"
EVENT_COVERAGE_CREATED = "iopcare.careplan.coverage.created.v1"
EVENT_AUTHORIZATION_CREATED = "iopcare.careplan.authorization.created.v1"
#: A utilization review alert (an authorization running low, ending soon, used up or expired):
#: the team task, a FHIR Task focused on the ClaimResponse (docs/decisions/0028).
EVENT_AUTHORIZATION_ALERT = "iopcare.careplan.authorization.alert.v1"
