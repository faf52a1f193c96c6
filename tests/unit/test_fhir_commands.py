"""The FHIR-to-request mapping scheduling and notes publish in their contracts: pure functions,
each a request message or a refusal naming the FHIR element."""

from __future__ import annotations

import base64
from typing import Any

import pytest

import iopcare.notes.contract as notes
import iopcare.scheduling.contract as scheduling
from iopcare.kit import fhir
from iopcare.notes.v1 import notes_service_pb2 as notes_pb
from iopcare.scheduling.v1 import scheduling_service_pb2 as scheduling_pb

GROUP = {
    "coding": [{"system": "https://iopcare.org/fhir/CodeSystem/appointment-kind", "code": "group"}]
}


def refused(call: Any, *args: Any, **kwargs: Any) -> list[tuple[str, str | None]]:
    """(issue code, expression) of every issue the mapping refuses with."""
    with pytest.raises(fhir.FhirError) as caught:
        call(*args, **kwargs)
    return [(i.code, i.expression) for i in caught.value.issues]


def appointment(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2026-03-02T09:00:00Z",
        "end": "2026-03-02T10:00:00Z",
        "serviceType": [{"coding": [{"code": "individual-therapy"}]}],
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr1"}, "status": "accepted"},
        ],
        "supportingInformation": [{"reference": "CarePlan/cp1"}],
    }
    resource.update(changes)
    return resource


def test_an_individual_appointment_is_a_booking() -> None:
    request = scheduling.create_appointment_request(appointment(), "r1")
    assert isinstance(request, scheduling_pb.BookAppointmentRequest)
    assert (request.request_id, request.patient_id, list(request.practitioner_ids)) == (
        "r1",
        "p1",
        ["dr1"],
    )
    assert (request.service_type, request.care_plan_id) == ("individual-therapy", "cp1")
    assert request.start_time.ToJsonString() == "2026-03-02T09:00:00Z"


def test_a_group_appointment_is_a_group_session_without_patients() -> None:
    group = appointment(
        appointmentType=GROUP,
        participant=[
            {"actor": {"reference": "Location/room1"}},
            {"actor": {"reference": "Practitioner/dr1"}},
        ],
        extension=[
            {"url": "https://iopcare.org/fhir/StructureDefinition/capacity", "valueInteger": 8}
        ],
    )
    request = scheduling.create_appointment_request(group, "r2")
    assert isinstance(request, scheduling_pb.CreateGroupSessionRequest)
    assert (request.location_id, list(request.facilitator_ids), request.capacity) == (
        "room1",
        ["dr1"],
        8,
    )
    with_patient = dict(
        group, participant=[*group["participant"], {"actor": {"reference": "Patient/p1"}}]
    )
    assert refused(scheduling.create_appointment_request, with_patient, "r3") == [
        ("business-rule", "Appointment.participant")
    ]


def test_a_group_session_without_a_room_is_left_to_scheduling() -> None:
    """The room rule is scheduling's (location_id is required there): the mapping passes none."""
    request = scheduling.create_appointment_request(
        appointment(
            appointmentType=GROUP, participant=[{"actor": {"reference": "Practitioner/d"}}]
        ),
        "r4",
    )
    assert isinstance(request, scheduling_pb.CreateGroupSessionRequest)
    assert request.location_id == ""


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"start": None}, "Appointment.start"),
        ({"status": "proposed"}, "Appointment.status"),
        (
            {"participant": [{"actor": {"reference": "Group/g1"}}]},
            "Appointment.participant[0].actor",
        ),
        ({"participant": [{"actor": {"reference": "Practitioner/d"}}]}, "Appointment.participant"),
    ],
)
def test_an_appointment_that_says_no_booking_is_refused_at_its_element(
    changes: dict[str, Any], where: str
) -> None:
    resource = {k: v for k, v in appointment(**changes).items() if v is not None}
    assert [e for _, e in refused(scheduling.create_appointment_request, resource, "r")] == [where]


def test_a_put_of_an_appointment_is_the_one_change_it_asks_for() -> None:
    stored = appointment()
    assert (
        scheduling.update_appointment_request(stored, appointment(), "a1", 2, individual=True)
        is None
    )
    cancel = scheduling.update_appointment_request(
        stored,
        appointment(status="cancelled", cancelationReason={"text": "ill"}),
        "a1",
        2,
        individual=True,
    )
    assert isinstance(cancel, scheduling_pb.CancelAppointmentRequest)
    assert (cancel.appointment_id, cancel.expected_version, cancel.reason) == ("a1", 2, "ill")
    moved = scheduling.update_appointment_request(
        stored,
        appointment(start="2026-03-03T09:00:00Z", end="2026-03-03T10:00:00Z"),
        "a1",
        2,
        individual=True,
    )
    assert isinstance(moved, scheduling_pb.RescheduleAppointmentRequest)
    attended = scheduling.update_appointment_request(
        stored, appointment(status="fulfilled"), "a1", 2, individual=True
    )
    assert isinstance(attended, scheduling_pb.RecordAttendanceRequest)
    assert attended.status == "fulfilled"


def test_a_repeated_put_of_an_appointment_asks_the_same_change_as_the_first() -> None:
    """A retry finds the stored version already changed: the change it asks comes from the body
    alone, and equals what the first attempt was mapped to against the version before."""
    stored = appointment()
    for body in (
        appointment(status="cancelled", cancelationReason={"text": "ill"}),
        appointment(start="2026-03-03T09:00:00Z", end="2026-03-03T10:00:00Z", comment="later"),
        appointment(status="noshow", comment="did not come"),
    ):
        first = scheduling.update_appointment_request(stored, body, "a1", 2, individual=True)
        repeated = scheduling.repeated_appointment_request(body, "a1", 2, individual=True)
        assert repeated == first, body
    assert refused(
        scheduling.repeated_appointment_request,
        appointment(status="arrived"),
        "g1",
        2,
        individual=False,
    ) == [("not-supported", "Appointment.status")]


def test_a_put_of_an_appointment_changing_anything_else_names_each_element() -> None:
    stored = appointment()
    other = appointment(description="x", priority=3)
    assert refused(
        scheduling.update_appointment_request, stored, other, "a1", 1, individual=True
    ) == [
        ("business-rule", "Appointment.description"),
        ("business-rule", "Appointment.priority"),
    ]
    both = appointment(status="cancelled", start="2026-03-03T09:00:00Z")
    assert refused(
        scheduling.update_appointment_request, stored, both, "a1", 1, individual=True
    ) == [("business-rule", "Appointment.status")]
    assert refused(
        scheduling.update_appointment_request,
        stored,
        appointment(status="noshow"),
        "a1",
        1,
        individual=False,
    ) == [("not-supported", "Appointment.status")]


def schedule(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Schedule",
        "actor": [{"reference": "Practitioner/dr1"}],
        "specialty": [{"coding": [{"code": "therapist"}]}],
        "serviceType": [{"coding": [{"code": "individual-therapy"}]}],
        "extension": [
            {
                "url": "https://iopcare.org/fhir/StructureDefinition/schedule-available-time",
                "extension": [
                    {"url": "daysOfWeek", "valueCode": "mon"},
                    {"url": "daysOfWeek", "valueCode": "tue"},
                    {"url": "availableStartTime", "valueTime": "09:00:00"},
                    {"url": "availableEndTime", "valueTime": "17:00:00"},
                ],
            }
        ],
    }
    resource.update(changes)
    return resource


def test_a_schedule_is_a_calendar_and_a_put_changes_what_its_kind_may() -> None:
    request = scheduling.create_schedule_request(schedule(), "r1")
    assert (request.schedule.kind, request.schedule.role) == ("practitioner", "therapist")
    assert [(h.day_of_week, h.opens, h.closes) for h in request.schedule.opening_hours] == [
        ("mon", "09:00", "17:00"),
        ("tue", "09:00", "17:00"),
    ]
    current = scheduling_pb.Schedule(id="s1", actor="Practitioner/dr1", kind="practitioner")
    update = scheduling.update_schedule_request(schedule(active=False), current, 3)
    assert (update.schedule.id, update.schedule.active, update.expected_version) == ("s1", False, 3)
    assert list(update.update_mask.paths) == ["service_types", "active", "role", "opening_hours"]
    moved = schedule(actor=[{"reference": "Practitioner/dr2"}])
    assert refused(scheduling.update_schedule_request, moved, current, 3) == [
        ("business-rule", "Schedule.actor")
    ]
    assert refused(scheduling.create_schedule_request, schedule(actor=[]), "r") == [
        ("required", "Schedule.actor")
    ]


def note(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "subject": {"reference": "Patient/p1"},
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "description": "Session",
        "content": [
            {"attachment": {"contentType": "text/plain", "data": base64.b64encode(b"hi").decode()}}
        ],
        "meta": {
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"},
            ]
        },
    }
    resource.update(changes)
    return resource


def test_a_document_reference_is_a_draft_note_with_every_label() -> None:
    request = notes.create_note_request(note(), "r1")
    assert isinstance(request, notes_pb.CreateNoteRequest)
    assert (request.note.kind, request.note.text, request.note.confidentiality) == (
        "progress",
        "hi",
        "R",
    )
    assert list(request.note.sensitivity) == ["SUD"]
    group = note(type={"coding": [{"system": "http://loinc.org", "code": "34787-2"}]})
    assert refused(notes.create_note_request, group, "r") == [
        ("not-supported", "DocumentReference.type")
    ]
    assert refused(notes.create_note_request, note(docStatus="final"), "r") == [
        ("business-rule", "DocumentReference.docStatus")
    ]
    binary = note(content=[{"attachment": {"contentType": "text/plain", "data": "!!"}}])
    assert refused(notes.create_note_request, binary, "r") == [
        ("value", "DocumentReference.content[0].attachment.data")
    ]


def test_a_put_of_a_note_edits_the_draft_or_signs_it_never_both() -> None:
    stored = note()
    assert notes.update_note_request(stored, note(), "n1", 1) is None
    edit = notes.update_note_request(stored, note(description="New"), "n1", 1)
    assert isinstance(edit, notes_pb.UpdateNoteRequest)
    assert (list(edit.update_mask.paths), edit.note.title) == (["title"], "New")
    sign = notes.update_note_request(stored, note(docStatus="final"), "n1", 1)
    assert isinstance(sign, notes_pb.SignNoteRequest)
    assert refused(
        notes.update_note_request, stored, note(docStatus="final", description="x"), "n1", 1
    ) == [("business-rule", "DocumentReference.docStatus")]
    assert refused(notes.update_note_request, stored, note(status="entered-in-error"), "n1", 1) == [
        ("business-rule", "DocumentReference.status")
    ]


def test_a_communication_is_a_message_in_the_thread() -> None:
    message = {
        "resourceType": "Communication",
        "subject": {"reference": "Patient/p1"},
        "payload": [{"contentString": "a"}, {"contentString": "b"}],
        "category": [{"coding": [{"code": "crisis"}]}],
        "inResponseTo": [{"reference": "Communication/m1"}],
    }
    request = notes.post_message_request(message, "r1")
    assert (request.text, request.category, request.in_response_to) == ("a\n\nb", "crisis", "m1")
    assert refused(notes.post_message_request, dict(message, payload=[]), "r") == [
        ("required", "Communication.payload")
    ]
    two = dict(
        message, inResponseTo=[{"reference": "Communication/m1"}, {"reference": "Communication/m2"}]
    )
    assert refused(notes.post_message_request, two, "r") == [
        ("value", "Communication.inResponseTo")
    ]


def consent(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "patient": {"reference": "Patient/p1"},
        "dateTime": "2026-02",
        "sourceReference": {"reference": "DocumentReference/form1"},
        "provision": {
            "actor": [{"reference": {"reference": "Device/ehr-1"}}],
            "securityLabel": [{"code": "SUD"}],
            "period": {"start": "2026-02-01", "end": "2027-02-01T00:00:00Z"},
        },
    }
    resource.update(changes)
    return resource


def test_a_consent_names_its_recipient_by_client_id() -> None:
    request = notes.record_consent_request(consent(), "r1")
    assert (request.recipient_type, request.recipient, request.scope) == ("Device", "ehr-1", "sud")
    assert request.signed_document == "DocumentReference/form1"
    assert request.signed_time.ToJsonString() == "2026-02-01T00:00:00Z"
    assert request.end_time.ToJsonString() == "2027-02-01T00:00:00Z"
    by_name = consent(provision={"actor": [{"reference": {"display": "Dr Who"}}]})
    assert refused(notes.record_consent_request, by_name, "r") == [
        ("required", "Consent.provision.actor[0].reference")
    ]
    assert refused(notes.record_consent_request, consent(status="inactive"), "r") == [
        ("business-rule", "Consent.status")
    ]


def test_a_put_of_a_consent_only_revokes_it() -> None:
    stored = consent()
    assert notes.update_consent_request(stored, consent(), "c1") is None
    revoke = notes.update_consent_request(stored, consent(status="inactive"), "c1")
    assert isinstance(revoke, notes_pb.RevokeConsentRequest) and revoke.id == "c1"
    assert refused(notes.update_consent_request, consent(status="inactive"), consent(), "c1") == [
        ("business-rule", "Consent.status")
    ]
    assert refused(notes.update_consent_request, stored, consent(dateTime="2025"), "c1") == [
        ("business-rule", "Consent.dateTime")
    ]


def test_a_family_session_names_its_relatives_and_a_put_records_who_came() -> None:
    attendance = "https://iopcare.org/fhir/StructureDefinition/participant-attendance"
    family = appointment()
    family["participant"] += [
        {"actor": {"reference": "RelatedPerson/mum"}, "status": "accepted"},
        {"actor": {"reference": "RelatedPerson/dad"}, "status": "accepted"},
    ]
    request = scheduling.create_appointment_request(family, "r1")
    assert isinstance(request, scheduling_pb.BookAppointmentRequest)
    assert list(request.related_person_ids) == ["mum", "dad"]
    # A group session has no family participants.
    group = appointment(appointmentType=GROUP, participant=family["participant"][1:])
    assert refused(scheduling.create_appointment_request, group, "r2") == [
        ("business-rule", "Appointment.participant")
    ]
    # The mother came, the father did not.
    done = {**family, "status": "fulfilled"}
    done["participant"] = [dict(p) for p in family["participant"]]
    done["participant"][2]["extension"] = [{"url": attendance, "valueCode": "fulfilled"}]
    done["participant"][3]["extension"] = [{"url": attendance, "valueCode": "noshow"}]
    change = scheduling.update_appointment_request(family, done, "a1", 2, individual=True)
    assert isinstance(change, scheduling_pb.RecordAttendanceRequest)
    assert (change.status, list(change.family_attended)) == ("fulfilled", ["mum"])
