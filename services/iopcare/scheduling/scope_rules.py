"""What each scheduling RPC touches, as SMART scopes name it.

kit.rpc.AuthInterceptor checks these for every token limited by scopes (outside EHRs, SMART app
launches); a test checks that every RPC of the service is declared.
"""

from __future__ import annotations

from iopcare.kit import scopes

C, R, U, S = scopes.CREATE, scopes.READ, scopes.UPDATE, scopes.SEARCH
SCOPE_RULES: scopes.Rules = {
    "CreateSchedule": scopes.rule("Schedule", C),
    "GetSchedule": scopes.rule("Schedule", R),
    "ListSchedules": scopes.rule("Schedule", S),
    "UpdateSchedule": scopes.rule("Schedule", U),
    "FindSlots": scopes.rule("Slot", S),
    "BookAppointment": scopes.rule("Appointment", C),
    "CreateGroupSession": scopes.rule("Appointment", C),
    "JoinGroupSession": scopes.rule("Appointment", U),
    "CancelAppointment": scopes.rule("Appointment", U),
    "RescheduleAppointment": scopes.rule("Appointment", U),
    "GetAppointment": scopes.rule("Appointment", R),
    "ListAppointments": scopes.rule("Appointment", S),
    "RecordAttendance": scopes.rule("Appointment", U),
    # The daily check-in is the patient's answer to the check-in Questionnaire (a patient's app
    # holds `patient/QuestionnaireResponse.c`).
    "RecordCheckIn": scopes.rule("QuestionnaireResponse", C),
    "ListCheckInResponses": scopes.rule("QuestionnaireResponse", S),
    # Weekly hours are computed from the patient's appointments.
    "GetIntensity": scopes.rule("Appointment", R),
    "ListEncounters": scopes.rule("Encounter", S),
    "ExportEncountersCsv": scopes.rule("Encounter", S),
}
