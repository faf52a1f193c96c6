"""The holistic view of one patient (GetPatientPlan), answered from careplan's own tables.

Sessions and team messages come from projections of scheduling's and notes' events, kept by the
handlers below, so the view never fans out to other services at read time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

import iopcare.notes.contract as notes
import iopcare.scheduling.contract as scheduling
from iopcare.careplan import fhir_map, store
from iopcare.careplan.domain.progress import (
    Attendance,
    attendance,
    attendance_by_activity,
    note_title,
)
from iopcare.careplan.service import ServiceBase, make_reviews_due
from iopcare.kit import audit, fhir, privacy, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork, as_utc
from iopcare.kit.events import ReceivedEvent
from iopcare.kit.teams import today
from iopcare.kit.versioned import Stored

UPCOMING_LIMIT = 20
NOTES_LIMIT = 10
#: Who revises a plan when careplan acts on another service's event (the Provenance agent).
SYSTEM = Principal(subject="service:careplan", role="service")


@dataclass(frozen=True)
class GoalProgress:
    goal: Stored
    measure: str | None
    latest: float | None
    latest_at: datetime | None
    achievement: str | None


@dataclass(frozen=True)
class Session:
    appointment_id: str
    start: datetime
    end: datetime
    status: str
    description: str | None
    care_plan_id: str | None


@dataclass(frozen=True)
class NoteSummary:
    id: str
    author: str
    title: str
    category: str
    priority: str
    sent_at: datetime
    #: Communication (a team message) or DocumentReference (a signed clinical note).
    resource_type: str = "Communication"
    #: The note's meta.security codes (confidentiality first); none for team messages.
    labels: tuple[str, ...] = ()


@dataclass
class PatientPlan:
    patient_id: str
    episode: Stored | None = None
    care_plan: Stored | None = None
    care_teams: list[Stored] = field(default_factory=list)
    goals: list[GoalProgress] = field(default_factory=list)
    upcoming: list[Session] = field(default_factory=list)
    attendance: Attendance = field(default_factory=lambda: attendance([]))
    by_activity: dict[str, Attendance] = field(default_factory=dict)
    notes: list[NoteSummary] = field(default_factory=list)


def _patient_status(session_status: str, participant: Any) -> str:
    """What a session is for one of its patients: in a group session their own attendance
    (scheduling's participant extension), or cancelled once they left it (declined)."""
    for extension in participant.extension or []:
        if extension.url == scheduling.ATTENDANCE_EXTENSION and extension.valueCode:
            return str(extension.valueCode)
    if participant.status == "declined" and session_status not in ("cancelled", "noshow"):
        return "cancelled"
    return session_status


class PatientView(ServiceBase):
    # Projections ---------------------------------------------------------------------------
    def on_appointments_proposed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        for entry in received.resource.entry or []:
            self._project_appointment(uow.conn, entry.resource)

    def on_appointment_updated(self, uow: UnitOfWork, received: ReceivedEvent) -> list[str]:
        """Projects a booked or changed session; returns the patients whose row changed."""
        return self._project_appointment(uow.conn, received.resource)

    def statuses(self, conn: Connection, patient_id: str) -> list[str]:
        """The statuses of all the patient's sessions, as projected."""
        v = store.session_view.c
        return [str(s) for s in conn.scalars(select(v.status).where(v.patient_id == patient_id))]

    def _project_appointment(self, conn: Connection, appointment: fhir.Resource) -> list[str]:
        """One row per patient the Appointment names: scheduling sends a group session once per
        patient, each copy naming that patient alone with their own attendance."""
        changed: list[str] = []
        if appointment.start is None or appointment.end is None:
            return changed
        version = int(appointment.meta.versionId or 1) if appointment.meta else 1
        plan_id = next(
            (
                fhir.reference_id(ref.reference, "CarePlan")
                for ref in appointment.supportingInformation or []
                if fhir.reference_id(ref.reference, "CarePlan")
            ),
            None,
        )
        v = store.session_view.c
        for participant in appointment.participant or []:
            patient_id = fhir.reference_id(
                participant.actor.reference if participant.actor else None, "Patient"
            )
            if not patient_id:
                continue
            row = (v.appointment_id == appointment.id) & (v.patient_id == patient_id)
            current = conn.execute(select(v.version).where(row)).scalar()
            if current is not None and current >= version:
                continue  # a replay or a late copy: never roll the view back
            conn.execute(delete(store.session_view).where(row))
            conn.execute(
                insert(store.session_view).values(
                    appointment_id=appointment.id,
                    patient_id=patient_id,
                    care_plan_id=plan_id,
                    start=appointment.start,
                    end=appointment.end,
                    status=_patient_status(appointment.status, participant),
                    description=(appointment.description or "")[:200] or None,
                    version=version,
                )
            )
            changed.append(patient_id)
        return changed

    def on_message_posted(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        message = received.resource
        patient_id = fhir.reference_id(
            message.subject.reference if message.subject else None, "Patient"
        )
        exists = uow.conn.execute(
            select(store.note_view.c.communication_id).where(
                store.note_view.c.communication_id == message.id
            )
        ).first()
        if not patient_id or exists is not None:
            return
        text = next((p.contentString for p in message.payload or [] if p.contentString), "")
        category = next(
            (c.code for concept in message.category or [] for c in concept.coding or []), "update"
        )
        uow.conn.execute(
            insert(store.note_view).values(
                communication_id=message.id,
                patient_id=patient_id,
                sender=message.sender.reference if message.sender else "",
                title=note_title(text),
                category=category,
                priority=message.priority or "routine",
                sent_at=message.sent or received.event.time,
            )
        )

    def on_message_retracted(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """A message the sender marked entered-in-error leaves the view (notes keeps it)."""
        uow.conn.execute(
            delete(store.note_view).where(
                store.note_view.c.communication_id == received.resource.id
            )
        )

    def on_note_signed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """A signed clinical note: its reference, type, author and labels (never its text)."""
        note = received.resource
        patient_id = fhir.reference_id(note.subject.reference if note.subject else None, "Patient")
        code = next((c.code for c in (note.type.coding if note.type else None) or []), None)
        kind = notes.KIND_BY_CODE.get(code or "")
        if not patient_id or not note.id or kind is None:
            return
        version = int(note.meta.versionId or 1) if note.meta else 1
        v = store.document_view.c
        current = uow.conn.execute(select(v.version).where(v.document_id == note.id)).scalar()
        if current is not None and current >= version:
            return  # a replay or a late copy
        uow.conn.execute(delete(store.document_view).where(v.document_id == note.id))
        if note.status == "entered-in-error":
            return
        labels = [s.code for s in (note.meta.security if note.meta else None) or [] if s.code]
        confidentiality = next((c for c in labels if c in privacy.CONFIDENTIALITY), "N")
        uow.conn.execute(
            insert(store.document_view).values(
                document_id=note.id,
                patient_id=patient_id,
                version=version,
                author=next((a.reference for a in note.author or [] if a.reference), ""),
                kind=kind,
                title=notes.NOTE_KINDS[kind][1],
                confidentiality=confidentiality,
                sensitivity=" ".join(sorted(set(labels) & privacy.SENSITIVITY)),
                signed_at=note.date or received.event.time,
            )
        )

    def on_crisis_raised(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """A crisis raised in the team thread (a clinician's crisis message, or careplan's own
        PHQ-9 crisis coming back as an alert): the patient's active plans are due for review
        today. Idempotent per day, so the alert for careplan's own crisis changes nothing more."""
        flag = received.resource
        patient_id = fhir.reference_id(flag.subject.reference if flag.subject else None, "Patient")
        if not patient_id:
            return
        make_reviews_due(
            uow,
            SYSTEM,
            patient_id,
            received.event.time.date(),
            "crisis raised in the team thread",
        )

    # The view ---------------------------------------------------------------------------------
    def get(self, principal: Principal, patient_id: str) -> PatientPlan:
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, audit.READ, "PatientPlan", patient_id
        )
        view = PatientPlan(patient_id)
        now = datetime.now(UTC)
        with self.db.read() as conn:
            episodes = store.episodes.for_patient(conn, patient_id)
            view.episode = episodes[-1] if episodes else None
            plans = store.plans.for_patient(conn, patient_id)
            active = [p for p in plans if p.status == "active"]
            candidates = active or plans
            view.care_plan = candidates[-1] if candidates else None
            view.care_teams = [
                t for t in store.teams.for_patient(conn, patient_id) if t.status == "active"
            ]
            view.goals = [
                self._progress(conn, g) for g in store.goals.for_patient(conn, patient_id)
            ]
            s = store.session_view.c
            rows = conn.execute(
                select(store.session_view).where(s.patient_id == patient_id).order_by(s.start)
            ).all()
            view.upcoming = [
                Session(
                    r.appointment_id,
                    as_utc(r.start),
                    as_utc(r.end),
                    r.status,
                    r.description,
                    r.care_plan_id,
                )
                for r in rows
                if as_utc(r.start) >= now
            ][:UPCOMING_LIMIT]
            past = [r for r in rows if as_utc(r.start) < now]
            view.attendance = attendance([r.status for r in past])
            view.by_activity = attendance_by_activity(
                [(r.description or "other", r.status) for r in past]
            )
            view.notes = self._latest_notes(conn, principal, basis, patient_id)
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            audit.READ,
            resource="PatientPlan",
            patient_id=patient_id,
            detail=basis,
        )
        return view

    def _latest_notes(
        self, conn: Connection, principal: Principal, basis: str, patient_id: str
    ) -> list[NoteSummary]:
        """The latest team messages and signed notes, newest first; a signed note only when the
        notes service's privacy rules let the caller read it (its type and author can say as
        much as its text: a psychotherapy note exists only for its author)."""
        n = store.note_view.c
        notes = [
            NoteSummary(
                r.communication_id, r.sender, r.title, r.category, r.priority, as_utc(r.sent_at)
            )
            for r in conn.execute(
                select(store.note_view)
                .where(n.patient_id == patient_id)
                .order_by(n.sent_at.desc())
                .limit(NOTES_LIMIT)
            ).all()
        ]
        viewer = privacy.Viewer(principal.reference, principal.role, basis)
        d = store.document_view.c
        on = today()
        roles: dict[str, list[str]] = {}  # an author's team roles, looked up once per view
        for r in conn.execute(
            select(store.document_view)
            .where(d.patient_id == patient_id)
            .order_by(d.signed_at.desc())
            .limit(NOTES_LIMIT * 5)
        ).all():
            sensitivity = frozenset(r.sensitivity.split())
            if r.author not in roles:
                roles[r.author] = sorted(
                    teams.roles_of_member(conn, store.care_team_member, r.author, patient_id, on)
                )
            author_roles = roles[r.author]
            facts = privacy.NoteFacts(
                author=r.author,
                author_role=author_roles[0] if author_roles else "",
                kind=r.kind,
                status="signed",
                confidentiality=r.confidentiality,
                sensitivity=sensitivity,
            )
            if not privacy.may_read(viewer, facts).allowed:
                continue
            notes.append(
                NoteSummary(
                    r.document_id,
                    r.author,
                    r.title,
                    "clinical-note",
                    "routine",
                    as_utc(r.signed_at),
                    "DocumentReference",
                    (r.confidentiality, *sorted(sensitivity)),
                )
            )
        notes.sort(key=lambda note: note.sent_at, reverse=True)
        return notes[:NOTES_LIMIT]

    def _progress(self, conn: Connection, goal: Stored) -> GoalProgress:
        resource = fhir.parse_resource(goal.resource)
        targets = fhir_map.goal_targets(resource)
        measure = targets[0].measure if targets else None
        latest = latest_at = None
        if measure:
            o = store.observation.c
            row = conn.execute(
                select(o.value, o.effective)
                .where((o.patient_id == goal.patient_id) & (o.code == measure))
                .order_by(o.effective.desc(), o.recorded_at.desc())
                .limit(1)
            ).first()
            if row is not None:
                latest, latest_at = row.value, as_utc(row.effective)
        return GoalProgress(goal, measure, latest, latest_at, fhir_map.goal_achievement(resource))
