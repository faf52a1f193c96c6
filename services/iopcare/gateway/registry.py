"""The resource handlers the gateway serves: the router and the CapabilityStatement both read
this one list, so what `/metadata` says is what the router does."""

from __future__ import annotations

from iopcare.gateway.resources.base import ResourceHandler
from iopcare.gateway.resources.careplan import (
    CarePlanHandler,
    CareTeamHandler,
    EpisodeOfCareHandler,
    GoalHandler,
    MedicationRequestHandler,
    MedicationStatementHandler,
    NutritionOrderHandler,
    ObservationHandler,
    PatientHandler,
)
from iopcare.gateway.resources.family import RelatedPersonHandler
from iopcare.gateway.resources.notes import (
    CommunicationHandler,
    ConsentHandler,
    DocumentReferenceHandler,
    FlagHandler,
)
from iopcare.gateway.resources.questionnaires import (
    QuestionnaireHandler,
    QuestionnaireResponseHandler,
)
from iopcare.gateway.resources.scheduling import (
    AppointmentHandler,
    EncounterHandler,
    ScheduleHandler,
    SlotHandler,
)
from iopcare.gateway.resources.utilization import ClaimResponseHandler, CoverageHandler

#: Every handler class, in CapabilityStatement order.
HANDLERS: tuple[type[ResourceHandler], ...] = (
    PatientHandler,
    EpisodeOfCareHandler,
    RelatedPersonHandler,
    CoverageHandler,
    ClaimResponseHandler,
    CarePlanHandler,
    CareTeamHandler,
    GoalHandler,
    NutritionOrderHandler,
    ObservationHandler,
    MedicationStatementHandler,
    MedicationRequestHandler,
    ScheduleHandler,
    SlotHandler,
    AppointmentHandler,
    EncounterHandler,
    CommunicationHandler,
    DocumentReferenceHandler,
    FlagHandler,
    ConsentHandler,
    QuestionnaireHandler,
    QuestionnaireResponseHandler,
)

BY_TYPE: dict[str, type[ResourceHandler]] = {h.type: h for h in HANDLERS}
