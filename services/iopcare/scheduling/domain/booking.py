"""Booking rules (plain Python, no I/O): who may be booked when, and how many fit in a group.

The service layer reads the facts these rules need (the overlapping bookings of every participant,
the session's seats) while it holds the participants' calendar locks, so the rules here decide on
facts no concurrent booking can change before the transaction commits (docs/decisions/0007).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import timedelta

from iopcare.kit.errors import AlreadyExists, FailedPrecondition, FieldViolations

from .calendar import Interval

#: The longest session one booking may cover.
MAX_SESSION = timedelta(hours=12)
MAX_FACILITATORS = 2
#: Statuses in which a session holds its participants' time.
BLOCKING_STATUSES = frozenset({"booked", "arrived", "checked-in", "pending"})


@dataclass(frozen=True)
class Busy:
    """A participant's existing booking: who, when, and which appointment holds it."""

    actor: str
    interval: Interval
    appointment_id: str


def check_participants(
    practitioners: list[str], problems: FieldViolations, path: str, *, kind: str
) -> None:
    if not 1 <= len(practitioners) <= MAX_FACILITATORS:
        problems.add(path, f"one or two {kind}")
    if len(set(practitioners)) != len(practitioners):
        problems.add(path, f"the same {kind[:-1]} twice")


def check_no_overlap(
    wanted: Interval,
    busy: Iterable[Busy],
    ignore: str | None = None,
    unnamed: Collection[str] = (),
) -> None:
    """Refuses the booking if any participant is already booked in an overlapping time.

    `ignore` is the appointment being moved (its own old time is no conflict). Actors in
    `unnamed` (the patients of a group the caller moves) are counted, never named."""
    clashing = {b.actor for b in busy if b.appointment_id != ignore and b.interval.overlaps(wanted)}
    hidden = clashing & set(unnamed)
    clashes = sorted(clashing - hidden)
    if hidden:
        # A facilitator moving a group may not see who is in it, let alone where else a patient
        # is booked (HIPAA minimum necessary; test-matrix C14): how many, not who.
        clashes.append(f"{len(hidden)} patient(s) of the group")
    if clashes:
        # Every actor named here is one the caller named itself.
        raise FailedPrecondition(
            f"already booked at that time: {', '.join(clashes)}",
            reason="DOUBLE_BOOKED",
            actors=",".join(clashes),
        )


def check_seat(capacity: int, patients: Iterable[str], patient: str) -> None:
    """A patient may join a group if not in it already and a seat is left."""
    present = set(patients)
    if patient in present:
        raise AlreadyExists("the patient is already in this group session", reason="ALREADY_JOINED")
    if len(present) >= capacity:
        raise FailedPrecondition(
            "the group session is full", reason="SESSION_FULL", capacity=str(capacity)
        )


def check_open_for_booking(status: str) -> None:
    if status not in BLOCKING_STATUSES:
        raise FailedPrecondition(
            f"a {status} session cannot take bookings or be moved", reason="SESSION_CLOSED"
        )
