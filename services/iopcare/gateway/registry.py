"""The resource handlers the gateway serves: the router and the CapabilityStatement both read
this one list, so what `/metadata` says is what the router does."""

from __future__ import annotations

from iopcare.gateway.resources.base import ResourceHandler
from iopcare.gateway.resources.careplan import (
    CarePlanHandler,
    CareTeamHandler,
    EpisodeOfCareHandler,
    GoalHandler,
    ObservationHandler,
    PatientHandler,
)
from iopcare.gateway.resources.notes import CommunicationHandler, FlagHandler
from iopcare.gateway.resources.scheduling import AppointmentHandler

#: Every handler class, in CapabilityStatement order. Schedule, Slot and DocumentReference join
#: here when scheduling and notes have their RPCs.
HANDLERS: tuple[type[ResourceHandler], ...] = (
    PatientHandler,
    EpisodeOfCareHandler,
    CarePlanHandler,
    CareTeamHandler,
    GoalHandler,
    ObservationHandler,
    AppointmentHandler,
    CommunicationHandler,
    FlagHandler,
)

BY_TYPE: dict[str, type[ResourceHandler]] = {h.type: h for h in HANDLERS}
