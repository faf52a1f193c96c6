"""Utilization review use cases: a patient's coverage (FHIR Coverage), the payer's authorizations
of a stay (FHIR ClaimResponse, preauthorization), the units used (attended sessions, from the
session view careplan projects from scheduling's events) and the team task raised once per
alert when an authorization runs low, ends soon, is used up or has expired.

Rules in `domain.utilization`; docs/decisions/0028-utilization-review.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, tzinfo

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.base import Asked
from iopcare.careplan.domain.ur_packet import ContinuedStay, PacketSources, compose_packet
from iopcare.careplan.domain.utilization import (
    ASAM_LEVEL,
    ATTENDED,
    Alert,
    Authorization,
    Session,
    alerts_due,
    check_authorization,
    check_coverage,
    units_used,
)
from iopcare.careplan.listing import Listings, Page, _versioned
from iopcare.kit import audit, fhir, labels
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork, as_utc
from iopcare.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from iopcare.kit.versioned import Stored

TASK_CODE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/utilization-review-task"


@dataclass(frozen=True)
class Authorized:
    """A stored authorization with the units used and remaining as of now."""

    item: Stored
    facts: Authorization
    used: int
    #: The team tasks raised for it (FHIR Task JSON), oldest first; on a single read only.
    tasks: tuple[str, ...] = ()

    @property
    def remaining(self) -> int:
        return max(self.facts.units - self.used, 0)


def sessions_of(conn: Connection, patient_id: str, zone: tzinfo) -> list[Session]:
    """The patient's sessions as careplan projected them, each on its day in the program's zone."""
    v = store.session_view.c
    rows = conn.execute(
        select(v.start, v.status).where(v.patient_id == patient_id).order_by(v.start)
    ).all()
    return [Session(as_utc(start).astimezone(zone).date(), str(status)) for start, status in rows]


def _facts(item: Stored) -> Authorization:
    return check_authorization(json.loads(item.resource))


def _no_identity(resource: fhir.Resource, resource_type: str) -> None:
    if resource.id or resource.meta:
        raise InvalidArgument(
            "the server assigns id and meta",
            [FieldViolation(f"fhir_json.{resource_type}.id", "leave id and meta out")],
        )


class Utilization(Listings):
    """Coverage and authorizations: create, read, a patient's lists; units used; alerts."""

    #: The program's time zone (a session's day) and the clock the alerts are judged by.
    zone: tzinfo = UTC
    clock: Callable[[], datetime] = staticmethod(lambda: datetime.now(UTC))

    coverages = _versioned("Coverage", store.coverages)
    authorizations_page = _versioned("ClaimResponse", store.authorizations)

    def create_coverage(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        """Records a patient's coverage (payer, member id, plan): the care team, as any write."""
        with self._audit_refusals(principal, audit.CREATE, "Coverage"):
            resource = self._parsed(fhir_json, "Coverage")
            _no_identity(resource, "Coverage")
            facts = check_coverage(fhir.to_dict(resource))

        def build(uow: UnitOfWork, item_id: str, now: datetime) -> str:
            return fhir.with_identity(resource, item_id, 1, now)

        return self._create_versioned(
            Asked(principal, request_id, {"fhir_json": fhir_json}),
            "Coverage",
            facts.patient_id,
            str(resource.status),
            codes.EVENT_COVERAGE_CREATED,
            build,
        )

    def get_coverage(self, principal: Principal, item_id: str) -> Stored:
        with self.db.read() as conn:
            item = store.coverages.load(conn, item_id)
        return self._audited_read(principal, f"Coverage/{item_id}", item)

    def create_authorization(
        self, principal: Principal, request_id: str, fhir_json: str
    ) -> Authorized:
        """Records a payer's authorization of a stay. The stay must be the patient's, and a
        Coverage it names must be the patient's too (checked in the write's transaction)."""
        with self._audit_refusals(principal, audit.CREATE, "ClaimResponse"):
            resource = self._parsed(fhir_json, "ClaimResponse")
            _no_identity(resource, "ClaimResponse")
            facts = check_authorization(fhir.to_dict(resource))

        def build(uow: UnitOfWork, item_id: str, now: datetime) -> str:
            episode = store.episodes.load(uow.conn, facts.episode_id)
            if episode is None or episode.patient_id != facts.patient_id:
                raise FailedPrecondition(
                    "the authorization's stay is not an EpisodeOfCare of its patient",
                    reason="EPISODE_NOT_FOUND",
                )
            if facts.coverage_id is not None:
                coverage = store.coverages.load(uow.conn, facts.coverage_id)
                if coverage is None or coverage.patient_id != facts.patient_id:
                    raise FailedPrecondition(
                        "the authorization's insurance is not a Coverage of its patient",
                        reason="COVERAGE_NOT_FOUND",
                    )
            stored = fhir.with_identity(resource, item_id, 1, now)
            # Derived data keeps its sources' labels: the authorization of a Part 2 stay (its
            # level, its ASAM code) is as labelled as the stay.
            stay_labels = labels.security_of(episode.resource)
            return labels.with_labels(stored, stay_labels) if stay_labels else stored

        item = self._create_versioned(
            Asked(principal, request_id, {"fhir_json": fhir_json}),
            "ClaimResponse",
            facts.patient_id,
            str(resource.status),
            codes.EVENT_AUTHORIZATION_CREATED,
            build,
        )
        return self.authorized(item)

    def get_authorization(self, principal: Principal, item_id: str) -> Authorized:
        """One authorization, its units used and the tasks raised for it."""
        with self.db.read() as conn:
            item = store.authorizations.load(conn, item_id)
        found = self.authorized(self._audited_read(principal, f"ClaimResponse/{item_id}", item))
        a = store.authorization_alert.c
        with self.db.read() as conn:
            tasks = conn.execute(
                select(a.task).where(a.authorization_id == item_id).order_by(a.raised_at, a.kind)
            ).scalars()
            return replace(found, tasks=tuple(str(t) for t in tasks))

    def authorizations(
        self, principal: Principal, patient_id: str, page_size: int, page_token: str
    ) -> Page[Authorized]:
        found = self.authorizations_page(principal, patient_id, page_size, page_token)
        with self.db.read() as conn:
            sessions = sessions_of(conn, patient_id, self.zone)
        return Page(
            [Authorized(i, _facts(i), units_used(_facts(i), sessions)) for i in found.items],
            found.next_page_token,
        )

    def authorized(self, item: Stored) -> Authorized:
        with self.db.read() as conn:
            sessions = sessions_of(conn, item.patient_id, self.zone)
        facts = _facts(item)
        return Authorized(item, facts, units_used(facts, sessions))

    def packet(
        self, principal: Principal, authorization_id: str, request: ContinuedStay, base_url: str
    ) -> str:
        """The utilization review packet of the authorization's stay (a FHIR document Bundle,
        `domain.ur_packet`): read by the patient's team, audited as a read of the
        authorization."""
        authorized = self.get_authorization(principal, authorization_id)
        facts, patient_id = authorized.facts, authorized.item.patient_id
        episode_ref = f"EpisodeOfCare/{facts.episode_id}"
        with self.db.read() as conn:
            patient = store.patients.load(conn, patient_id)
            episode = store.episodes.load(conn, facts.episode_id)
            kept = [
                p
                for p in store.plans.for_patient(conn, patient_id)
                if p.status != "entered-in-error"
            ]
            # The stay's plans (supportingInfo names it); a plan made before the stay was
            # recorded names none: then the patient's plans.
            of_stay = [
                p
                for p in kept
                if episode_ref in fhir_map.plan_episode_refs(fhir.parse_resource(p.resource))
            ]
            plans = [json.loads(p.resource) for p in of_stay or kept]
            goals = [
                json.loads(g.resource)
                for g in store.goals.for_patient(conn, patient_id)
                if g.status != "entered-in-error"
            ]
            measures = [
                json.loads(text)
                for _, text in store.measures_page(conn, patient_id, None, 1000, None)
            ]
            sessions = sessions_of(conn, patient_id, self.zone)
        if episode is None:  # checked when the authorization was recorded; never deleted
            raise FailedPrecondition(f"{episode_ref} vanished", reason="EPISODE_NOT_FOUND")
        today = self.clock().astimezone(self.zone).date()
        attendance = (
            sum(s.status in ATTENDED for s in sessions),
            sum(s.status == "noshow" for s in sessions),
            sum(s.status in ("booked", "proposed", "pending") and s.day >= today for s in sessions),
        )
        sources = PacketSources(
            patient_id,
            json.loads(patient.resource) if patient is not None else None,
            json.loads(episode.resource),
            json.loads(authorized.item.resource),
            facts,
            authorized.used,
            plans,
            goals,
            measures,
            attendance,
        )
        bundle = compose_packet(sources, request, base_url.rstrip("/"), self.clock())
        return json.dumps(bundle, separators=(",", ":"))

    # Alerts --------------------------------------------------------------------------------------

    def check_patient(self, uow: UnitOfWork, patient_id: str, trace: str | None = None) -> int:
        """Raises the alerts the patient's active authorizations warrant now (each once), in
        `uow`'s transaction: the consumer calls it after projecting attendance."""
        today = self.clock().astimezone(self.zone).date()
        sessions = sessions_of(uow.conn, patient_id, self.zone)
        raised = 0
        for item in store.authorizations.for_patient(uow.conn, patient_id):
            if item.status == "active":
                raised += _raise_alerts(uow, item, sessions, today, trace)
        return raised

    def announce_alerts(self, today: date | None = None) -> int:
        """The periodic check (every replica runs it; each alert is claimed once): the alerts
        of every active authorization, the date ones (ending soon, expired) above all."""
        today = today or self.clock().astimezone(self.zone).date()
        with self.db.read() as conn:
            c = store.authorizations.current.c
            active = conn.execute(
                select(c.id, c.patient_id).where(c.status == "active").order_by(c.id)
            ).all()
        raised = 0
        for item_id, patient_id in active:
            with UnitOfWork(self.db) as uow:
                item = store.authorizations.load(uow.conn, item_id)
                if item is None or item.status != "active":
                    continue
                sessions = sessions_of(uow.conn, str(patient_id), self.zone)
                count = _raise_alerts(uow, item, sessions, today, None)
                uow.commit()
                raised += count
        if raised:
            self.notify_outbox()
        return raised


def _raise_alerts(
    uow: UnitOfWork,
    item: Stored,
    sessions: list[Session],
    today: date,
    trace: str | None,
) -> int:
    try:
        facts = _facts(item)
    except InvalidArgument:  # stored under older rules: nothing to judge it by
        return 0
    raised = 0
    for alert in alerts_due(facts, units_used(facts, sessions), today):
        now = datetime.now(UTC)
        task = _task(item, facts, alert, now)
        if not _claim(uow.conn, item, alert.kind, task, now):
            continue
        store.JOURNAL.publish(
            uow,
            codes.EVENT_AUTHORIZATION_ALERT,
            f"ClaimResponse/{item.id}",
            key=item.patient_id,
            data=task,
            at=now,
            parent_trace=trace,
        )
        raised += 1
    return raised


def _task(item: Stored, facts: Authorization, alert: Alert, now: datetime) -> str:
    """The team task of an alert: a FHIR Task for the stay's team to request a continued-stay
    review (or plan the transition), focused on the authorization."""
    task = {
        "resourceType": "Task",
        "id": str(uuid.uuid4()),
        "status": "requested",
        "intent": "order",
        "priority": alert.priority,
        "code": {
            "coding": [{"system": TASK_CODE_SYSTEM, "code": alert.kind}],
            "text": alert.text,
        },
        "description": alert.text,
        "focus": {"reference": f"ClaimResponse/{item.id}"},
        "for": {"reference": f"Patient/{item.patient_id}"},
        "encounter": None,
        "authoredOn": fhir.instant(now),
        "restriction": {"period": {"end": facts.end.isoformat()}},
        # As labelled as the authorization it is about (notes labels the thread message so).
        **({"meta": {"security": found}} if (found := labels.security_of(item.resource)) else {}),
        "input": [
            {
                "type": {"text": "level of care"},
                "valueCodeableConcept": {
                    "coding": [
                        {"system": codes.LEVEL_SYSTEM, "code": facts.level},
                        {
                            "system": "https://iopcare.org/fhir/CodeSystem/asam-level",
                            "code": ASAM_LEVEL[facts.level],
                        },
                    ]
                },
            },
            {"type": {"text": "units authorized"}, "valueInteger": facts.units},
        ],
    }
    del task["encounter"]
    return json.dumps(fhir.to_dict(fhir.parse_resource(task, "Task")), separators=(",", ":"))


def _claim(conn: Connection, item: Stored, kind: str, task: str, now: datetime) -> bool:
    """Records the alert; False if it was raised before (another replica, an earlier event or a
    run before a restart). ON CONFLICT DO NOTHING, as for review notices."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    claimed = conn.execute(
        insert(store.authorization_alert)
        .values(
            authorization_id=item.id,
            kind=kind,
            patient_id=item.patient_id,
            task=task,
            raised_at=now,
        )
        .on_conflict_do_nothing(index_elements=["authorization_id", "kind"])
        .returning(store.authorization_alert.c.kind)
    ).first()
    return claimed is not None
