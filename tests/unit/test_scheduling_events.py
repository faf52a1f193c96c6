"""An appointment's event copies (scheduling.appointment_events) and the API's dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from google.type import date_pb2

from iopcare.scheduling import fhir_map, store
from iopcare.scheduling.api import date_message, date_text
from iopcare.scheduling.appointment_events import copies

START = datetime(2027, 3, 1, 14, tzinfo=UTC)


def _appointment(kind: str, patients: list[str]) -> store.StoredAppointment:
    resource = fhir_map.booked_appointment(
        "appt-1",
        kind=kind,
        patients=patients,
        practitioners=["th-1"],
        location="room-1" if kind == "group" else None,
        start=START,
        end=START + timedelta(hours=1),
        service_type="group-therapy",
        description="",
        care_plan_id="",
        capacity=8 if kind == "group" else 1,
        at=START,
    )
    patient = patients[0] if kind == "individual" and patients else ""
    return store.StoredAppointment(
        "appt-1", 1, patient, "booked", START, START + timedelta(hours=1), None, resource, kind
    )


def test_an_individual_session_has_one_copy_keyed_by_its_patient() -> None:
    a = _appointment("individual", ["pat-a"])
    assert copies(a, ["ignored"]) == [("pat-a", a.resource)]


def test_each_group_copy_names_only_its_patient_and_an_empty_group_is_keyed_by_itself() -> None:
    a = _appointment("group", ["pat-a", "pat-b"])
    by_key = dict(copies(a, ["pat-a", "pat-b"]))
    assert set(by_key) == {"pat-a", "pat-b"}
    assert fhir_map.patients_in(by_key["pat-a"]) == {"pat-a"}
    assert fhir_map.patients_in(by_key["pat-b"]) == {"pat-b"}
    [(key, data)] = copies(a, [])
    assert key == "appt-1" and fhir_map.patients_in(data) == set()


def test_dates_cross_the_api_as_google_type_date() -> None:
    assert date_text(date_message(date(2026, 12, 3))) == "2026-12-03"
    assert date_text(date_pb2.Date(year=2026, month=2, day=30)) == "2026-02-30"  # refused later
    assert date_text(date_pb2.Date()) == ""
    assert date_text(date_pb2.Date(year=2026, month=12)) == ""
