"""What each careplan RPC touches, as SMART scopes name it.

kit.rpc.AuthInterceptor checks these for every token limited by scopes (outside EHRs, SMART app
launches); a test checks that every RPC of the service is declared.
"""

from __future__ import annotations

from iopcare.kit import scopes

C, R, U, S = scopes.CREATE, scopes.READ, scopes.UPDATE, scopes.SEARCH
SCOPE_RULES: scopes.Rules = {
    "CreateCarePlan": scopes.rule("CarePlan", C),
    "GetCarePlan": scopes.rule("CarePlan", R),
    "DraftCarePlan": scopes.rule("CarePlan", C),
    "UpdateCarePlan": scopes.rule("CarePlan", U),
    "RecordPlanReview": scopes.rule("CarePlan", U),
    "ListCarePlans": scopes.rule("CarePlan", S),
    "CreateCareTeam": scopes.rule("CareTeam", C),
    "GetCareTeam": scopes.rule("CareTeam", R),
    "UpdateCareTeam": scopes.rule("CareTeam", U),
    "ListCareTeams": scopes.rule("CareTeam", S),
    "CreateGoal": scopes.rule("Goal", C),
    "GetGoal": scopes.rule("Goal", R),
    "ListGoals": scopes.rule("Goal", S),
    "RecordMeasure": scopes.rule("Observation", C),
    "ListMeasures": scopes.rule("Observation", S),
    "GetMeasure": scopes.rule("Observation", R),
    "CreateEpisode": scopes.rule("EpisodeOfCare", C),
    "GetEpisode": scopes.rule("EpisodeOfCare", R),
    "ListEpisodes": scopes.rule("EpisodeOfCare", S),
    "AdmitPatient": scopes.rule("EpisodeOfCare", U),
    "ChangeLevelOfCare": scopes.rule("EpisodeOfCare", U),
    "DischargePatient": scopes.rule("EpisodeOfCare", U),
    # The holistic view shows the plan, team, goals, episode, sessions and the thread's messages
    # and notes at once: a token needs read access to each of them.
    "GetPatientPlan": scopes.rule(
        "CarePlan",
        R,
        also=(
            ("CareTeam", R),
            ("Goal", R),
            ("EpisodeOfCare", R),
            ("Appointment", R),
            ("Communication", R),
            ("DocumentReference", R),
            ("NutritionOrder", R),
            ("MedicationStatement", R),
            ("MedicationRequest", R),
        ),
    ),
    "RegisterPatient": scopes.rule("Patient", C),
    "GetPatient": scopes.rule("Patient", R),
    "FindPatient": scopes.rule("Patient", S),
    "RegisterPractitioner": scopes.rule("Practitioner", C),
    "RegisterPractitionerRole": scopes.rule("PractitionerRole", C),
    "GetPractitioner": scopes.rule("Practitioner", R, also=(("PractitionerRole", R),)),
    "CreateRelatedPerson": scopes.rule("RelatedPerson", C),
    "GetRelatedPerson": scopes.rule("RelatedPerson", R),
    "ListRelatedPersons": scopes.rule("RelatedPerson", S),
    "CreateMedicationStatement": scopes.rule("MedicationStatement", C),
    "GetMedicationStatement": scopes.rule("MedicationStatement", R),
    "ListMedicationStatements": scopes.rule("MedicationStatement", S),
    "UpdateMedicationStatement": scopes.rule("MedicationStatement", U),
    "CreateMedicationRequest": scopes.rule("MedicationRequest", C),
    "GetMedicationRequest": scopes.rule("MedicationRequest", R),
    "ListMedicationRequests": scopes.rule("MedicationRequest", S),
    "UpdateMedicationRequest": scopes.rule("MedicationRequest", U),
    # Reconciliation reads and writes the inbound medications and the statements decided.
    "GetMedicationReconciliation": scopes.rule("MedicationStatement", R),
    "ResolveReconciliationItem": scopes.rule("MedicationStatement", U),
    "CreateCoverage": scopes.rule("Coverage", C),
    "GetCoverage": scopes.rule("Coverage", R),
    "ListCoverages": scopes.rule("Coverage", S),
    "CreateAuthorization": scopes.rule("ClaimResponse", C),
    "GetAuthorization": scopes.rule("ClaimResponse", R),
    "ListAuthorizations": scopes.rule("ClaimResponse", S),
    # The packet holds the stay, its plans, goals, measures and the patient: a token needs read
    # access to each of them, as for GetPatientPlan.
    "GetUtilizationReviewPacket": scopes.rule(
        "ClaimResponse",
        R,
        also=(
            ("EpisodeOfCare", R),
            ("CarePlan", R),
            ("Goal", R),
            ("Observation", R),
            ("Patient", R),
        ),
    ),
    # vread and history of any versioned type: the type is the request's.
    "CreateNutritionOrder": scopes.rule("NutritionOrder", C),
    "GetNutritionOrder": scopes.rule("NutritionOrder", R),
    "ListNutritionOrders": scopes.rule("NutritionOrder", S),
    "UpdateNutritionOrder": scopes.rule("NutritionOrder", U),
    "GetResourceVersion": scopes.rule("CarePlan", R, type_field="resource_type"),
    "ListResourceVersions": scopes.rule("CarePlan", R, type_field="resource_type"),
}
