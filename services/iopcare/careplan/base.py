"""What careplan's use cases share: the database, access, auditing and the write path.

Each aggregate's use cases live in their own module (`service` for the plan, `reviews`,
`versions`, `listing`, `care_teams`, `measures`, `episodes`, `registry`, `patient_view`); events
consumed from other services are in `handlers`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime

from iopcare.careplan import fhir_map, store
from iopcare.careplan.domain.review import next_review_due
from iopcare.kit import audit, fhir, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import FailedPrecondition, NotFound
from iopcare.kit.requests import change_once, create_once
from iopcare.kit.teams import TeamAccess
from iopcare.kit.versioned import Reviser, Stored, VersionedTables, revise


def new_id() -> str:
    return str(uuid.uuid4())


def revise_by(
    uow: UnitOfWork,
    principal: Principal,
    resource_type: str,
    item_id: str,
    expected_version: int,
    reviser: Reviser,
    reason: str | None,
    **options: bool,
) -> tuple[Stored, str]:
    """The next version of a resource by `principal`, stored with its Provenance
    (kit.versioned.revise, whose `options` these are); returns it and the kind of change."""
    _, revised, change = revise(
        uow.conn,
        store.VERSIONED[resource_type],
        resource_type,
        item_id,
        expected_version,
        reviser,
        principal.reference,
        reason,
        **options,
    )
    return revised, change


@dataclass(frozen=True)
class Asked:
    """A request to create: by whom, its request id (a retry repeats it) and what it asks for
    (fingerprinted: the same request id must ask the same)."""

    principal: Principal
    request_id: str
    request: object


@dataclass(frozen=True)
class Change:
    """A change to one stored version: by whom, of which resource, based on which version and
    why; with a `request_id`, made once (kit.requests). `asked` is the RPC's request (its
    fingerprint leaves the request_id out); None for a use case's own arguments."""

    principal: Principal
    item_id: str
    expected_version: int
    reason: str = ""
    request_id: str = ""
    asked: object = None

    def asked_or(self, arguments: object) -> object:
        """What the change asks for: the RPC's request, else the use case's `arguments`."""
        return self.asked if self.asked is not None else arguments


class ServiceBase:
    """What the care plan use cases share: the database, access, auditing and events."""

    def __init__(
        self,
        db: Database,
        *,
        max_resource_bytes: int = fhir.DEFAULT_MAX_BYTES,
        notify_outbox: Callable[[], None] = lambda: None,
        access: TeamAccess | None = None,
        review_interval_days: int = 30,
    ) -> None:
        self.db = db
        self.max_resource_bytes = max_resource_bytes
        self.notify_outbox = notify_outbox
        self.access = access or TeamAccess(store.care_team_member)
        self.review_interval_days = review_interval_days

    def _parsed(self, fhir_json: str, resource_type: str) -> fhir.Resource:
        """A request's `fhir_json` as a valid `resource_type` of at most the configured size
        (INVALID_ARGUMENT naming the field otherwise)."""
        return fhir.parse_resource(
            fhir_json, resource_type, max_bytes=self.max_resource_bytes, field="fhir_json"
        )

    def _first_review(self, plan: fhir.Resource, on: date) -> fhir.Resource:
        """An active plan always has a next review date: set one on activation if none is given."""
        if plan.status != "active" or fhir_map.review_due(plan) is not None:
            return plan
        return fhir_map.with_review_due(plan, next_review_due(on, self.review_interval_days))

    def _create_versioned(
        self,
        asked: Asked,
        resource_type: str,
        patient_id: str,
        status: str,
        event_type: str,
        build: Callable[[UnitOfWork, str, datetime], str],
        authorize: Callable[[UnitOfWork], str] | None = None,
    ) -> Stored:
        """Creates version 1 of a resource once per request id, with its history row, its event
        and its audit row in one transaction (the journal's `record_version`); refusals are
        audited too.

        `authorize(uow)` returns the basis of the caller's access (default: care team access to
        the patient) or raises; `build(uow, id, now)` returns the stored JSON (and may refuse).
        """
        principal, tables = asked.principal, store.VERSIONED[resource_type]
        authorize = authorize or (lambda uow: self.access.basis(uow.conn, principal, patient_id))
        # The refusal row names the patient: a refused enrolment or write is reviewed per patient.
        with self._audit_refusals(principal, audit.CREATE, resource_type, patient_id):

            def _create(uow: UnitOfWork, item_id: str) -> None:
                basis = authorize(uow)
                now = datetime.now(UTC)
                stored = Stored(item_id, 1, patient_id, status, now, build(uow, item_id, now))
                tables.insert(uow.conn, stored, principal.reference)
                store.JOURNAL.record_version(
                    uow, principal, audit.CREATE, resource_type, stored, event_type, detail=basis
                )

            item_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                f"Create{resource_type}",
                asked.request_id,
                _create,
                new_id,
                request=asked.request,  # a reuse is audited by the _audit_refusals around this
            )
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            item = tables.load(conn, item_id)
        if item is None:  # committed above; nothing is ever deleted
            raise FailedPrecondition(f"{resource_type}/{item_id} vanished after it was created")
        return item

    def _reload(self, tables: VersionedTables, item_id: str) -> Stored:
        """A resource just written (or found written by the first attempt of a request)."""
        with self.db.read() as conn:
            item = tables.load(conn, item_id)
        if item is None:  # written above; nothing is ever deleted
            raise FailedPrecondition(f"{item_id} vanished after it was written")
        return item

    def _change_once(
        self, change: Change, operation: str, apply: Callable[[UnitOfWork], None], asked: object
    ) -> None:
        """`apply` in one transaction, once per request id (kit.requests: a retry is a no-op, the
        id reused for another request than `asked` is refused); call it inside
        `_audit_refusals`, which audits such a refusal."""
        change_once(
            self.db,
            store.request_log,
            change.principal,
            operation,
            change.request_id,
            change.item_id,
            apply,
            request=asked,
        )

    def _changed(self, resource_type: str, item_id: str) -> Stored:
        """A resource just revised (or found revised by the first attempt of a request), once
        the relay has been told of its event."""
        self.notify_outbox()
        return self._reload(store.VERSIONED[resource_type], item_id)

    def _audit_refusals(
        self, principal: Principal, action: str, resource: str, patient_id: str | None = None
    ) -> AbstractContextManager[None]:
        """Audits a refused request (its own transaction), then lets the refusal through."""
        return store.JOURNAL.refusals(self.db, principal, action, resource, patient_id)

    def _audit_alone(
        self, principal: Principal, action: str, resource: str, patient_id: str | None, **how: str
    ) -> None:
        """The audit row of a read or search, in a transaction of its own; `how`: its `outcome`
        (success unless said) and `detail` (the basis of access)."""
        store.JOURNAL.audit_separately(
            self.db, principal, action, resource=resource, patient_id=patient_id, **how
        )

    def _audited_read(self, principal: Principal, resource: str, item: Stored | None) -> Stored:
        """Checks access to a read item and audits the read, its refusal or its absence."""
        if item is None:
            self._audit_alone(principal, audit.READ, resource, None, outcome=audit.NOT_FOUND)
            raise NotFound(f"{resource} not found", resource=resource)
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, audit.READ, resource, item.patient_id
        )
        self._audit_alone(principal, audit.READ, resource, item.patient_id, detail=basis)
        return item
