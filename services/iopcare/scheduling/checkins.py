"""Daily check-ins: a patient checks in each program day; a check-in missing at the cutoff
raises an alert."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from iopcare.kit import audit, paging, teams
from iopcare.kit.access import within_launch_context
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from iopcare.kit.requests import Asked
from iopcare.kit.versioned import Stored
from iopcare.scheduling import checkin_form, codes, store
from iopcare.scheduling.alerts import Alerts
from iopcare.scheduling.domain.checkin import CheckInAnswers, check_answers
from iopcare.scheduling.store.checkins import StoredResponse, checkin_response_by_id


def patient_basis(
    access: teams.TeamAccess, conn: Connection, principal: Principal, patient_id: str
) -> str:
    """The basis on which the caller acts on a patient's check-ins: the patient themselves (role
    `patient`, their token's launch patient only), else the care-team rule."""
    if principal.role != "patient":
        return access.basis(conn, principal, patient_id)
    if principal.patient_context is None or principal.patient_context != patient_id:
        raise PermissionDenied(
            "a patient's token acts on that patient's own record only", reason="NOT_THIS_PATIENT"
        )
    within_launch_context(principal.patient_limit, patient_id)
    return "patient"


@dataclass(eq=False)
class CheckIns:
    db: Database
    access: teams.TeamAccess
    alerts: Alerts
    zone: ZoneInfo
    #: Local time by which a patient with a session that day checks in.
    checkin_cutoff: time

    def record_check_in(
        self,
        principal: Principal,
        patient_id: str,
        now: datetime | None = None,
        *,
        request_id: str = "",
    ) -> tuple[date, datetime, bool, bool]:
        """The patient's check-in for today (local): (day, time, late, already recorded).

        Checking in twice the same day answers with the first check-in. With a `request_id`
        (kit.requests), a retry answers with the day its first attempt checked in for, even
        after midnight, and a different request under the same id is refused."""
        now = now or datetime.now(UTC)
        local_now = now.astimezone(self.zone)
        day = local_now.date()
        late = local_now.time() > self.checkin_cutoff
        with store.JOURNAL.refusals(self.db, principal, audit.CREATE, "CheckIn", patient_id):
            if not request_id:
                with UnitOfWork(self.db) as uow:
                    answer = self._check_in(uow, principal, patient_id, day, now, late)
                    uow.commit()
                return answer
            already = True

            def _create(uow: UnitOfWork, _id: str) -> str:
                nonlocal already
                *_, already = self._check_in(uow, principal, patient_id, day, now, late)
                return day.isoformat()

            asked = Asked(
                store.request_log, principal, "RecordCheckIn", request_id, ("check-in", patient_id)
            )
            first_day, created = asked.create(self.db, _create, day.isoformat)
        with self.db.read() as conn:
            found = store.check_in_of(conn, patient_id, date.fromisoformat(first_day))
        if found is None:  # pragma: no cover - written by this request or its first attempt
            raise NotFound("the check-in was not found")
        return date.fromisoformat(first_day), found[0], found[1], not created or already

    def _check_in(
        self,
        uow: UnitOfWork,
        principal: Principal,
        patient_id: str,
        day: date,
        now: datetime,
        late: bool,
    ) -> tuple[date, datetime, bool, bool]:
        basis = patient_basis(self.access, uow.conn, principal, patient_id)
        at, was_late, already = store.check_in(uow.conn, patient_id, day, now, late)
        store.JOURNAL.audit(
            uow,
            principal,
            audit.CREATE,
            resource="CheckIn",
            patient_id=patient_id,
            detail=f"{day.isoformat()}{' (late)' if was_late else ''}; {basis}",
        )
        return day, at, was_late, already

    def record_answers(
        self,
        principal: Principal,
        patient_id: str,
        answers: CheckInAnswers,
        now: datetime | None = None,
        *,
        request_id: str = "",
    ) -> tuple[tuple[date, datetime, bool, bool], StoredResponse]:
        """The patient's check-in with their answers: the day's check-in (the first one stays)
        and the answers as a QuestionnaireResponse with its `checkin.recorded` event, in one
        transaction; a yes to the safety item takes notes' crisis path from that event. A
        repeat of a request (same `request_id`) answers with the first response."""
        check_answers(answers)
        now = now or datetime.now(UTC)
        local_now = now.astimezone(self.zone)
        day = local_now.date()
        late = local_now.time() > self.checkin_cutoff
        asked = Asked(
            store.request_log,
            principal,
            "RecordCheckIn",
            request_id or str(uuid.uuid4()),
            {"patient_id": patient_id, "answers": vars(answers)},
        )

        def _create(uow: UnitOfWork, response_id: str) -> str:
            self._check_in(uow, principal, patient_id, day, now, late)
            resource = checkin_form.response(
                response_id, patient_id, answers, now, _author(principal, patient_id)
            )
            stored = StoredResponse(response_id, patient_id, now, resource)
            store.insert_checkin_response(uow.conn, stored, day)
            store.JOURNAL.publish_version(
                uow,
                "QuestionnaireResponse",
                Stored(response_id, 1, patient_id, "completed", now, resource),
                codes.EVENT_CHECKIN_RECORDED,
            )
            store.JOURNAL.audit(
                uow,
                principal,
                audit.CREATE,
                resource=f"QuestionnaireResponse/{response_id}",
                patient_id=patient_id,
                detail="daily check-in answers",
            )
            return response_id

        with store.JOURNAL.refusals(
            self.db, principal, audit.CREATE, "QuestionnaireResponse", patient_id
        ):
            response_id, _created = asked.create(self.db, _create, lambda: str(uuid.uuid4()))
        self.alerts.notify_outbox()
        with self.db.read() as conn:
            response = checkin_response_by_id(conn, response_id)
            if response is not None:  # the day of the first attempt (a retry after midnight)
                day = response.authored_at.astimezone(self.zone).date()
            found = store.check_in_of(conn, patient_id, day)
        if response is None or found is None:  # pragma: no cover - written by this request
            raise NotFound("the check-in was not found")
        # Already recorded: the day had its check-in before these answers (or this is a retry).
        return (day, found[0], found[1], found[0] != now), response

    def responses(
        self, principal: Principal, patient_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[StoredResponse], str]:
        """A page of the patient's check-in answers, newest first (audited search)."""
        size = paging.page_size(page_size)
        position = paging.decode(page_token, {"at": str, "id": str})
        try:
            before = (datetime.fromisoformat(position["at"]), position["id"]) if position else None
        except ValueError as exc:  # a token nobody issued
            raise InvalidArgument(
                "the page token is not one this listing issued",
                [FieldViolation("page_token", "invalid")],
            ) from exc
        with (
            store.JOURNAL.refusals(
                self.db, principal, audit.SEARCH, "QuestionnaireResponse", patient_id
            ),
            self.db.read() as conn,
        ):
            basis = patient_basis(self.access, conn, principal, patient_id)
        with self.db.read() as conn:
            found = store.checkin_responses(conn, patient_id, size + 1, before)
        token = ""
        if len(found) > size:
            found = found[:size]
            token = paging.encode({"at": found[-1].authored_at.isoformat(), "id": found[-1].id})
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            audit.SEARCH,
            resource="QuestionnaireResponse",
            patient_id=patient_id,
            detail=f"{len(found)} hits; {basis}",
        )
        return found, token

    def check_missed_check_ins(self, now: datetime | None = None) -> int:
        """After today's cutoff: one missed-check-in alert per patient with a session today and
        no check-in (periodic task, so the team hears within minutes). Returns how many."""
        now = now or datetime.now(UTC)
        local_now = now.astimezone(self.zone)
        if local_now.time() <= self.checkin_cutoff:
            return 0
        day = local_now.date()
        start = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC)
        with self.db.read() as conn:
            missing = store.missing_check_ins(conn, day, start, end)
        text = f"no daily check-in by {self.checkin_cutoff:%H:%M} on {day.isoformat()}"
        return self.alerts.for_patients(
            missing, codes.ALERT_MISSED_CHECKIN, lambda _uow, _p: (day.isoformat(), text), now
        )


def _author(principal: Principal, patient_id: str) -> str:
    """Who answered: the patient themselves, or the clinician entering the answers for them."""
    return f"Patient/{patient_id}" if principal.role == "patient" else principal.reference
