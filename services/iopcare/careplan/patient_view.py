"""The holistic view of one patient (GetPatientPlan), answered from careplan's own tables.

Sessions and team messages come from projections of scheduling's and notes' events, kept by
`careplan.handlers`, so the view never fans out to other services at read time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from iopcare.careplan import discipline_view, fhir_map, nutrition, store
from iopcare.careplan.base import ServiceBase
from iopcare.careplan.domain.goals import Section, goal_discipline, readable, trend
from iopcare.careplan.domain.measures import Target
from iopcare.careplan.domain.progress import (
    Attendance,
    attendance,
    attendance_by_activity,
)
from iopcare.kit import audit, fhir, labels, privacy, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import as_utc
from iopcare.kit.teams import today
from iopcare.kit.versioned import Stored

UPCOMING_LIMIT = 20
NOTES_LIMIT = 10


@dataclass(frozen=True)
class GoalProgress:
    goal: Stored
    measure: str | None
    latest: float | None
    latest_at: datetime | None
    achievement: str | None
    #: Its owning discipline (ADR 0022), the trend of its measure, the value before the latest
    #: and how many there are, its description and the target followed.
    discipline: str = ""
    trend: str = ""
    previous: float | None = None
    count: int = 0
    description: str = ""
    target: Target | None = None


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
    nutrition_order: Stored | None = None
    disciplines: list[Section] = field(default_factory=list)


class PatientView(ServiceBase):
    """The holistic view of one patient, from careplan's tables and its projections of
    scheduling's and notes' events (kept by `handlers`)."""

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
            viewer = privacy.Viewer(principal.reference, principal.role, basis)
            every = [self._progress(conn, g) for g in store.goals.for_patient(conn, patient_id)]
            # Only the goals the caller may read (a labelled goal: kit/privacy.py's rules).
            view.goals = [
                g
                for g in every
                if readable(viewer, labels.security_of(g.goal.resource), g.discipline)
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
            view.nutrition_order = nutrition.current_order(conn, patient_id)
            view.disciplines = discipline_view.sections(conn, viewer, view, today())
        self._audit_alone(principal, audit.READ, "PatientPlan", patient_id, detail=basis)
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
        history = store.values_over_time(conn, goal.patient_id, measure) if measure else []
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
        description = resource.description.text if resource.description is not None else None
        return GoalProgress(
            goal,
            measure,
            latest,
            latest_at,
            fhir_map.goal_achievement(resource),
            goal_discipline(json.loads(goal.resource)) or "",
            trend(targets[0] if targets else None, history),
            history[-2] if len(history) >= 2 else None,
            len(history),
            description or "",
            targets[0] if targets else None,
        )
