"""What each notes RPC touches, as SMART scopes name it.

kit.rpc.AuthInterceptor checks these for every token limited by scopes (outside EHRs, SMART app
launches); a test checks that every RPC of the service is declared.
"""

from __future__ import annotations

from iopcare.kit import scopes

C, R, U, D, S = scopes.CREATE, scopes.READ, scopes.UPDATE, scopes.DELETE, scopes.SEARCH
SCOPE_RULES: scopes.Rules = {
    "PostMessage": scopes.rule("Communication", C),
    "ListThread": scopes.rule("Communication", S),
    "GetCommunication": scopes.rule("Communication", R),
    "RetractMessage": scopes.rule("Communication", U),
    "MarkRead": scopes.rule("Communication", U),
    "SaveMessageDraft": scopes.rule("Communication", C),
    "ListMessageDrafts": scopes.rule("Communication", S),
    "SendMessageDraft": scopes.rule("Communication", C),
    "DiscardMessageDraft": scopes.rule("Communication", D),
    "WatchThread": scopes.rule("Communication", S),
    "CreateNote": scopes.rule("DocumentReference", C),
    "UpdateNote": scopes.rule("DocumentReference", U),
    "SignNote": scopes.rule("DocumentReference", U),
    "AmendNote": scopes.rule("DocumentReference", U),
    "GetNote": scopes.rule("DocumentReference", R),
    "SearchNotes": scopes.rule("DocumentReference", S),
    "DiscloseNote": scopes.rule("DocumentReference", R),
    "ImportDocument": scopes.rule("DocumentReference", C),
    "RecordConsent": scopes.rule("Consent", C),
    "RevokeConsent": scopes.rule("Consent", U),
    "ListConsents": scopes.rule("Consent", S),
    "GetConsent": scopes.rule("Consent", R),
    # A crisis alert is a Communication and a safety Flag; acknowledging changes the Flag.
    "AcknowledgeCrisis": scopes.rule("Flag", U),
    "ListFlags": scopes.rule("Flag", S),
    # The roster is the program's (no patient's): PractitionerRole names who is on call.
    "SetOnCallRoster": scopes.rule("PractitionerRole", U),
    "GetOnCallRoster": scopes.rule("PractitionerRole", R),
    # A safety plan is a QuestionnaireResponse to the published Questionnaire.
    "GetSafetyPlanQuestionnaire": scopes.rule("Questionnaire", R),
    "SaveSafetyPlan": scopes.rule("QuestionnaireResponse", C),
    "GetSafetyPlan": scopes.rule("QuestionnaireResponse", R),
    "GetPatientSafetyPlan": scopes.rule("QuestionnaireResponse", S),
    "ListSafetyPlanVersions": scopes.rule("QuestionnaireResponse", R),
    "ListSafetyPlanReviews": scopes.rule("QuestionnaireResponse", S),
}
