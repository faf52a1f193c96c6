"""The SubscriptionTopics the gateway offers and which Kafka events trigger them (pure).

FHIR R4 has no SubscriptionTopic resource; the Subscriptions R5 Backport IG (1.1.0) lets an R4
server name its topics by canonical URL and list them in its CapabilityStatement (the
`capabilitystatement-subscriptiontopic-canonical` extension on the Subscription resource entry),
which is what the gateway does. Each topic here says which of the services' events
(docs/events.md) trigger it, and the one resource type the notification is about (its focus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BASE = "https://iopcare.org/fhir/SubscriptionTopic"
#: The `$handoff` operation's identifier system on the planned EpisodeOfCare it creates (the same
#: as `gateway.handoff.HANDOFF_ID_SYSTEM`; a unit test holds them equal).
HANDOFF_ID_SYSTEM = "https://iopcare.org/fhir/sid/handoff-bundle"

Predicate = Callable[[str, dict[str, Any]], bool]


def _always(_type: str, _resource: dict[str, Any]) -> bool:
    return True


def _booked_or_cancelled(event_type: str, resource: dict[str, Any]) -> bool:
    if event_type.endswith(".appointment.booked.v1"):
        return True
    return resource.get("status") == "cancelled"


def _from_handoff(_type: str, resource: dict[str, Any]) -> bool:
    return any(
        isinstance(i, dict) and i.get("system") == HANDOFF_ID_SYSTEM
        for i in resource.get("identifier", [])
    )


@dataclass(frozen=True)
class Topic:
    """One SubscriptionTopic: its canonical URL, title, focus type and triggering events."""

    code: str
    title: str
    description: str
    resource_type: str
    event_types: frozenset[str]
    applies: Predicate = _always

    @property
    def url(self) -> str:
        return f"{BASE}/{self.code}"


_PLAN_EVENTS = frozenset(
    f"iopcare.careplan.{kind}.v1"
    for kind in (
        "created",
        "updated",
        "activated",
        "suspended",
        "resumed",
        "completed",
        "revoked",
        "entered-in-error",
        "reviewed",
    )
)

TOPICS: tuple[Topic, ...] = (
    Topic(
        "care-plan-change",
        "Care plan created or changed",
        "A patient's IOP care plan was created, edited, reviewed, or changed status.",
        "CarePlan",
        _PLAN_EVENTS,
    ),
    Topic(
        "crisis-flag",
        "Crisis flag raised",
        "A safety Flag was raised on a patient by a crisis (PHQ-9 item 9, a clinical threshold, "
        "or a clinician's crisis message).",
        "Flag",
        frozenset({"iopcare.notes.crisis.raised.v1"}),
    ),
    Topic(
        "appointment-booked-cancelled",
        "Appointment booked or cancelled",
        "A session was booked for a patient (individual, or a seat in a group), or cancelled.",
        "Appointment",
        frozenset(
            {
                "iopcare.scheduling.appointment.booked.v1",
                "iopcare.scheduling.appointment.updated.v1",
            }
        ),
        _booked_or_cancelled,
    ),
    Topic(
        "handoff-accepted",
        "Step-down handoff accepted",
        "A `$handoff` was accepted: the program opened the patient's planned IOP episode.",
        "EpisodeOfCare",
        frozenset({"iopcare.careplan.episode.created.v1"}),
        _from_handoff,
    ),
    Topic(
        "discharge-transfer",
        "Patient discharged or transferred",
        "A patient's IOP episode ended by discharge, or the patient moved to another level of "
        "care (stepped down, stepped up, level changed).",
        "EpisodeOfCare",
        frozenset(
            f"iopcare.careplan.episode.{kind}.v1"
            for kind in ("discharged", "stepped-down", "stepped-up", "level-changed")
        ),
    ),
)

BY_URL: dict[str, Topic] = {t.url: t for t in TOPICS}
#: Every event type some topic listens to (the consumer skips the others unparsed).
EVENT_TYPES: frozenset[str] = frozenset().union(*(t.event_types for t in TOPICS))


def topics_for(event_type: str, resource: dict[str, Any]) -> list[Topic]:
    """The topics an event triggers: its type is one the topic lists, the resource is of the
    topic's focus type, and the topic's condition holds (an update of an appointment counts
    only when it cancels it)."""
    return [
        t
        for t in TOPICS
        if event_type in t.event_types
        and resource.get("resourceType") == t.resource_type
        and t.applies(event_type, resource)
    ]


def patient_of(resource: dict[str, Any], key: str) -> str:
    """The patient an event is about: the record's key (the services key every patient event by
    the patient's id, docs/events.md), else the resource's subject or patient reference."""
    if key:
        return key
    for name in ("subject", "patient"):
        reference = resource.get(name)
        if isinstance(reference, dict):
            text = str(reference.get("reference", ""))
            if text.startswith("Patient/"):
                return text.removeprefix("Patient/")
    return ""
