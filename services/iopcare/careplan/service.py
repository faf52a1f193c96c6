"""The care plan service layer: one method per use case, each one unit of work."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.domain.measures import achievement, check_measure, crisis_reasons
from iopcare.careplan.domain.model import (
    MAX_VERSION,
    apply_mask,
    check_new_plan,
    check_revision,
    check_update_request,
)
from iopcare.careplan.domain.team import (
    check_new_team,
    check_team_revision,
    may_manage_team,
)
from iopcare.kit import audit, fhir, paging, teams, topics
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    IopcareError,
    NotFound,
)
from iopcare.kit.events import Event, append_to_outbox
from iopcare.kit.requests import create_once
from iopcare.kit.teams import TeamAccess
from iopcare.kit.versioned import Stored, Version, revise


def _new_id() -> str:
    return str(uuid.uuid4())


class _Service:
    """What the plan and team use cases share: the database, access, auditing and events."""

    def __init__(
        self,
        db: Database,
        *,
        max_resource_bytes: int = fhir.DEFAULT_MAX_BYTES,
        notify_outbox: Callable[[], None] = lambda: None,
        access: TeamAccess | None = None,
    ) -> None:
        self.db = db
        self.max_resource_bytes = max_resource_bytes
        self.notify_outbox = notify_outbox
        self.access = access or TeamAccess(store.care_team_member)

    def _publish(self, uow: UnitOfWork, resource_type: str, item: Stored, event_type: str) -> None:
        """The event of a new version, in the same transaction (outbox), keyed by patient."""
        append_to_outbox(
            uow.conn,
            store.outbox,
            topics.CAREPLAN,
            Event(
                type=event_type,
                source=codes.SOURCE,
                subject=f"{resource_type}/{item.id}/_history/{item.version}",
                key=item.patient_id,
                data=item.resource,
                time=item.updated_at,
            ),
        )

    def _refused(self, principal: Principal, action: str, resource: str, exc: IopcareError) -> None:
        """Every refused write is audited too (reliability C11), in a transaction of its own."""
        outcome = audit.NOT_FOUND if isinstance(exc, NotFound) else audit.DENIED
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            action,
            resource=resource,
            patient_id=None,
            outcome=outcome,
            detail=exc.reason,
        )

    def _audited_read(self, principal: Principal, resource: str, item: Stored | None) -> Stored:
        """Checks access to a read item and audits the read, its refusal or its absence."""
        if item is None:
            audit.record_separately(
                self.db,
                store.audit_log,
                principal,
                audit.READ,
                resource=resource,
                patient_id=None,
                outcome=audit.NOT_FOUND,
            )
            raise NotFound(f"{resource} not found", resource=resource)
        refused: IopcareError | None = None
        basis = ""
        with self.db.read() as conn:
            try:
                basis = self.access.basis(conn, principal, item.patient_id)
            except IopcareError as exc:
                refused = exc
        if refused is not None:
            audit.record_separately(
                self.db,
                store.audit_log,
                principal,
                audit.READ,
                resource=resource,
                patient_id=item.patient_id,
                outcome=audit.DENIED,
                detail=refused.reason,
            )
            raise refused
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.READ,
            resource=resource,
            patient_id=item.patient_id,
            detail=basis,
        )
        return item


class CarePlans(_Service):
    """The treatment plan: create, revise under optimistic concurrency, read its history."""

    def _check_teams(self, conn: Connection, plan: fhir.Resource, patient_id: str) -> None:
        """A plan's careTeam references must be teams of the same patient in this service."""
        problems = []
        for index, team_id in fhir_map.plan_team_ids(plan):
            team = store.teams.load(conn, team_id) if team_id else None
            if team is None or team.patient_id != patient_id:
                problems.append(
                    FieldViolation(
                        f"fhir_json.CarePlan.careTeam[{index}]",
                        "must reference a CareTeam of the plan's patient (CareTeam/{id})",
                    )
                )
        if problems:
            raise InvalidArgument("the plan refers to an unknown care team", problems)

    @contextmanager
    def _audit_refusals(self, principal: Principal, action: str, resource: str) -> Iterator[None]:
        try:
            yield
        except IopcareError as exc:
            self._refused(principal, action, resource, exc)
            raise

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> store.StoredPlan:
        """Validates and stores a new plan (version 1) with its history, event and audit rows."""
        with self._audit_refusals(principal, audit.CREATE, "CarePlan"):
            resource = fhir.parse_resource(
                fhir_json, "CarePlan", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            draft = fhir_map.draft_from_fhir(resource)
            check_new_plan(draft, field_prefix="fhir_json.")
            patient_id, status = str(draft.patient_id), str(draft.status)

            def _create(uow: UnitOfWork, plan_id: str) -> None:
                basis = self.access.basis(uow.conn, principal, patient_id)
                self._check_teams(uow.conn, resource, patient_id)
                now = datetime.now(UTC)
                stored = store.StoredPlan(
                    id=plan_id,
                    version=1,
                    patient_id=patient_id,
                    status=status,
                    updated_at=now,
                    resource=fhir_map.stamp(resource, plan_id, 1, now),
                )
                store.plans.insert(uow.conn, stored, principal.reference)
                self._publish(uow, "CarePlan", stored, codes.EVENT_CREATED)
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.CREATE,
                    resource=f"CarePlan/{plan_id}",
                    patient_id=patient_id,
                    detail=basis,
                )

            plan_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                "CreateCarePlan",
                request_id,
                _create,
                _new_id,
            )
        if created:
            self.notify_outbox()
        return self._load(plan_id)

    def update(
        self,
        principal: Principal,
        plan_id: str,
        expected_version: int,
        fhir_json: str,
        mask: list[str],
        reason: str = "",
    ) -> store.StoredPlan:
        """Stores a new version if `expected_version` is still current; never a lost update."""
        resource_name = f"CarePlan/{plan_id}"
        with self._audit_refusals(principal, audit.UPDATE, resource_name):
            # With a mask the document may carry only the masked elements, so it is validated
            # as a whole only after merging; its JSON and its type are checked at once.
            document = fhir.load_json(
                fhir_json, max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            if not isinstance(document, dict) or document.get("resourceType") != "CarePlan":
                raise InvalidArgument(
                    "fhir_json must be a CarePlan",
                    [FieldViolation("fhir_json.resourceType", "must be CarePlan")],
                )
            check_update_request(plan_id, document.get("id"), expected_version, reason)
            granted: list[str] = []
            with UnitOfWork(self.db) as uow:

                def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                    granted.append(self.access.basis(uow.conn, principal, current.patient_id))
                    current_document = json.loads(current.resource)
                    merged = apply_mask(current_document, document, mask)
                    merged_resource = fhir.parse_resource(merged, "CarePlan", field="fhir_json")
                    self._check_teams(uow.conn, merged_resource, current.patient_id)
                    change = check_revision(
                        fhir_map.draft_from_fhir(fhir.parse_resource(current_document)),
                        fhir_map.draft_from_fhir(merged_resource),
                    )
                    resource = fhir_map.stamp(merged_resource, plan_id, version, now)
                    return resource, str(merged_resource.status), change

                _, revised, change = revise(
                    uow.conn,
                    store.plans,
                    "CarePlan",
                    plan_id,
                    expected_version,
                    reviser,
                    principal.reference,
                    reason,
                )
                self._publish(uow, "CarePlan", revised, codes.EVENT_FOR_CHANGE[change])
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.UPDATE,
                    resource=resource_name,
                    patient_id=revised.patient_id,
                    detail=f"{change}; {granted[0]}",
                )
                uow.commit()
        self.notify_outbox()
        return revised

    def get(self, principal: Principal, plan_id: str) -> store.StoredPlan:
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id) if plan_id else None
        return self._audited_read(principal, f"CarePlan/{plan_id}", plan)

    def get_version(self, principal: Principal, plan_id: str, version: int) -> store.StoredPlan:
        if not 1 <= version <= MAX_VERSION:
            raise InvalidArgument(
                "version must be >= 1", [FieldViolation("version", "a version number >= 1")]
            )
        with self.db.read() as conn:
            plan = store.plans.load_version(conn, plan_id, version)
        return self._audited_read(principal, f"CarePlan/{plan_id}/_history/{version}", plan)

    def list_versions(
        self, principal: Principal, plan_id: str, page_size: int, page_token: str
    ) -> tuple[list[Version], str]:
        size = paging.page_size(page_size)
        position = paging.decode(page_token, {"before": int})
        before = int(position["before"]) if position is not None else None
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id)
            versions = store.plans.versions(conn, plan_id, size + 1, before) if plan else []
        self._audited_read(principal, f"CarePlan/{plan_id}/_history", plan)
        token = ""
        if len(versions) > size:
            versions = versions[:size]
            token = paging.encode({"before": versions[-1].version})
        return versions, token

    def _load(self, plan_id: str) -> store.StoredPlan:
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id)
        if plan is None:  # committed above, and plans are never deleted
            raise FailedPrecondition(f"CarePlan/{plan_id} vanished after it was created")
        return plan


class CareTeams(_Service):
    """The care team of a patient: who works on the plan, and so who may see the patient."""

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        try:
            resource = fhir.parse_resource(
                fhir_json, "CareTeam", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            draft = fhir_map.team_from_fhir(resource)
            check_new_team(draft, field_prefix="fhir_json.")
            patient_id, status = str(draft.patient_id), str(draft.status)

            def _create(uow: UnitOfWork, team_id: str) -> None:
                may_manage_team(
                    principal.role, self.access.on_team(uow.conn, principal, patient_id)
                )
                now = datetime.now(UTC)
                team = Stored(
                    team_id,
                    1,
                    patient_id,
                    status,
                    now,
                    fhir.with_identity(resource, team_id, 1, now),
                )
                store.teams.insert(uow.conn, team, principal.reference)
                teams.replace_members(
                    uow.conn,
                    store.care_team_member,
                    team_id,
                    patient_id,
                    teams.memberships(resource),
                    status == "active",
                )
                self._publish(uow, "CareTeam", team, codes.EVENT_TEAM_CREATED)
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.CREATE,
                    resource=f"CareTeam/{team_id}",
                    patient_id=patient_id,
                )

            team_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                "CreateCareTeam",
                request_id,
                _create,
                _new_id,
            )
        except IopcareError as exc:
            self._refused(principal, audit.CREATE, "CareTeam", exc)
            raise
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            team = store.teams.load(conn, team_id)
        assert team is not None  # committed above; teams are never deleted
        return team

    def update(
        self,
        principal: Principal,
        team_id: str,
        expected_version: int,
        fhir_json: str,
        reason: str = "",
    ) -> Stored:
        name = f"CareTeam/{team_id}"
        try:
            document, resource = fhir.parse_document(
                fhir_json, "CareTeam", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            if not 1 <= expected_version <= MAX_VERSION:
                raise InvalidArgument(
                    "expected_version is required",
                    [FieldViolation("expected_version", "the version the change is based on")],
                )
            if document.get("id") not in (None, team_id):
                raise InvalidArgument(
                    "the document's id differs from the request's",
                    [FieldViolation("fhir_json.CareTeam.id", "must be absent or equal to id")],
                )
            revised_draft = fhir_map.team_from_fhir(resource)
            with UnitOfWork(self.db) as uow:

                def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                    may_manage_team(
                        principal.role, self.access.on_team(uow.conn, principal, current.patient_id)
                    )
                    change = check_team_revision(
                        fhir_map.team_from_fhir(fhir.parse_resource(current.resource)),
                        revised_draft,
                    )
                    return (
                        fhir.with_identity(resource, team_id, version, now),
                        str(revised_draft.status),
                        change,
                    )

                _, team, change = revise(
                    uow.conn,
                    store.teams,
                    "CareTeam",
                    team_id,
                    expected_version,
                    reviser,
                    principal.reference,
                    reason,
                )
                teams.replace_members(
                    uow.conn,
                    store.care_team_member,
                    team.id,
                    team.patient_id,
                    teams.memberships(resource),
                    team.status == "active",
                )
                self._publish(uow, "CareTeam", team, codes.EVENT_TEAM_UPDATED)
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=team.patient_id,
                    detail=change,
                )
                uow.commit()
        except IopcareError as exc:
            self._refused(principal, audit.UPDATE, name, exc)
            raise
        self.notify_outbox()
        return team

    def get(self, principal: Principal, team_id: str) -> Stored:
        with self.db.read() as conn:
            team = store.teams.load(conn, team_id)
        return self._audited_read(principal, f"CareTeam/{team_id}", team)

    def for_patient(self, principal: Principal, patient_id: str) -> list[Stored]:
        with self.db.read() as conn:
            basis_error: IopcareError | None = None
            try:
                basis = self.access.basis(conn, principal, patient_id)
            except IopcareError as exc:
                basis_error, basis = exc, ""
            teams = store.teams.for_patient(conn, patient_id) if basis_error is None else []
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.SEARCH,
            resource="CareTeam",
            patient_id=patient_id,
            outcome=audit.DENIED if basis_error else audit.SUCCESS,
            detail=basis_error.reason if basis_error else f"{len(teams)} hits; {basis}",
        )
        if basis_error is not None:
            raise basis_error
        return teams


@dataclass(frozen=True)
class Recorded:
    """What recording a measure did: the Observation as stored, the goals whose achievement it
    changed (on the first attempt of a request; a retry returns none), and any crisis."""

    observation_id: str
    resource: str
    updated_goals: list[Stored]
    crisis_reasons: list[str]


class Measures(_Service):
    """Goals with measurable targets, and the outcome measures recorded against them."""

    def create_goal(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        try:
            goal = fhir.parse_resource(
                fhir_json, "Goal", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            patient_id = fhir.reference_id(
                goal.subject.reference if goal.subject else None, "Patient"
            )
            problems = []
            if not patient_id:
                problems.append(
                    FieldViolation("fhir_json.Goal.subject", "must reference a Patient")
                )
            if goal.lifecycleStatus not in codes.GOAL_STATUSES:
                problems.append(
                    FieldViolation("fhir_json.Goal.lifecycleStatus", "not a goal status")
                )
            if problems:
                raise InvalidArgument("the Goal cannot be created", problems)
            assert patient_id is not None

            def _create(uow: UnitOfWork, goal_id: str) -> None:
                basis = self.access.basis(uow.conn, principal, patient_id)
                now = datetime.now(UTC)
                stored = Stored(
                    goal_id,
                    1,
                    patient_id,
                    str(goal.lifecycleStatus),
                    now,
                    fhir.with_identity(goal, goal_id, 1, now),
                )
                store.goals.insert(uow.conn, stored, principal.reference)
                self._publish(uow, "Goal", stored, codes.EVENT_GOAL_CREATED)
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.CREATE,
                    resource=f"Goal/{goal_id}",
                    patient_id=patient_id,
                    detail=basis,
                )

            goal_id, created = create_once(
                self.db, store.request_log, principal, "CreateGoal", request_id, _create, _new_id
            )
        except IopcareError as exc:
            self._refused(principal, audit.CREATE, "Goal", exc)
            raise
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            stored_goal = store.goals.load(conn, goal_id)
        assert stored_goal is not None
        return stored_goal

    def get_goal(self, principal: Principal, goal_id: str) -> Stored:
        with self.db.read() as conn:
            goal = store.goals.load(conn, goal_id)
        return self._audited_read(principal, f"Goal/{goal_id}", goal)

    def goals_for_patient(self, principal: Principal, patient_id: str) -> list[Stored]:
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, audit.SEARCH, "Goal", patient_id
        )
        with self.db.read() as conn:
            found = store.goals.for_patient(conn, patient_id)
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.SEARCH,
            resource="Goal",
            patient_id=patient_id,
            detail=f"{len(found)} hits; {basis}",
        )
        return found

    def record(self, principal: Principal, request_id: str, fhir_json: str) -> Recorded:
        """Stores a measure, updates the achievement of the goals that target it, and raises a
        crisis event at once when the measure calls for one, all in one transaction."""
        updated: list[Stored] = []
        try:
            observation = fhir.parse_resource(
                fhir_json, "Observation", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            measure = fhir_map.measure_from_fhir(observation)
            check_measure(measure)
            assert measure.patient_id and measure.code and measure.effective and measure.status
            patient_id, code = measure.patient_id, measure.code
            reasons = crisis_reasons(measure)

            def _create(uow: UnitOfWork, observation_id: str) -> None:
                basis = self.access.basis(uow.conn, principal, patient_id)
                now = datetime.now(UTC)
                stored = Stored(
                    observation_id,
                    1,
                    patient_id,
                    str(measure.status),
                    now,
                    fhir.with_identity(observation, observation_id, 1, now),
                )
                uow.conn.execute(
                    store.observation.insert().values(
                        id=observation_id,
                        patient_id=patient_id,
                        code=code,
                        status=measure.status,
                        value=measure.value,
                        effective=measure.effective,
                        resource=stored.resource,
                        recorded_at=now,
                    )
                )
                self._publish(uow, "Observation", stored, codes.EVENT_MEASURE_RECORDED)
                if reasons:
                    # At once, in the same transaction: the alert cannot be lost or outrun.
                    self._publish(uow, "Observation", stored, codes.EVENT_CRISIS)
                history = store.values_over_time(uow.conn, patient_id, code)
                updated.extend(self._update_goals(uow, principal, patient_id, code, history))
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.CREATE,
                    resource=f"Observation/{observation_id}",
                    patient_id=patient_id,
                    detail=basis,
                )

            observation_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                "RecordMeasure",
                request_id,
                _create,
                _new_id,
            )
        except IopcareError as exc:
            self._refused(principal, audit.CREATE, "Observation", exc)
            raise
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            loaded = store.load_observation(conn, observation_id)
        assert loaded is not None
        stored_measure = fhir_map.measure_from_fhir(fhir.parse_resource(loaded[0]))
        return Recorded(
            observation_id, loaded[0], updated if created else [], crisis_reasons(stored_measure)
        )

    def _update_goals(
        self,
        uow: UnitOfWork,
        principal: Principal,
        patient_id: str,
        code: str,
        history: list[float],
    ) -> list[Stored]:
        """New versions of the patient's open goals whose target is this measure, where the
        achievement status moves (improving, worsening, no-change, achieved)."""
        changed = []
        for current in store.goals.for_patient(uow.conn, patient_id):
            goal = fhir.parse_resource(current.resource)
            if goal.lifecycleStatus not in codes.GOAL_OPEN_STATUSES:
                continue
            targets = [t for t in fhir_map.goal_targets(goal) if t.measure == code]
            if not targets:
                continue
            status = achievement(targets[0], history)
            if status is None or status == fhir_map.goal_achievement(goal):
                continue
            revised_goal = fhir_map.with_achievement(goal, status)

            def reviser(
                item: Stored,
                version: int,
                now: datetime,
                revised_goal: Any = revised_goal,
                status: str = status,
            ) -> tuple[str, str, str]:
                return (
                    fhir.with_identity(revised_goal, item.id, version, now),
                    item.status,
                    f"achievement:{status}",
                )

            _, revised, _change = revise(
                uow.conn,
                store.goals,
                "Goal",
                current.id,
                current.version,
                reviser,
                principal.reference,
                f"measure {code} recorded",
            )
            self._publish(uow, "Goal", revised, codes.EVENT_GOAL_UPDATED)
            changed.append(revised)
        return changed

    def measures_for_patient(self, principal: Principal, patient_id: str, code: str) -> list[str]:
        basis = teams.require_access(
            self.db,
            store.audit_log,
            self.access,
            principal,
            audit.SEARCH,
            "Observation",
            patient_id,
        )
        with self.db.read() as conn:
            found = store.measures_for_patient(conn, patient_id, code or None)
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.SEARCH,
            resource="Observation",
            patient_id=patient_id,
            detail=f"{len(found)} hits; {basis}",
        )
        return found
