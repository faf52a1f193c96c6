"""The registry: patients (found by identifier, never duplicated) and clinicians with their roles.

The other services refer to patients and practitioners by id; careplan keeps who they are.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from iopcare.careplan import codes, store
from iopcare.careplan.base import ServiceBase, new_id, revise_by
from iopcare.kit import audit, fhir
from iopcare.kit.access import within_launch_context
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    Aborted,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from iopcare.kit.requests import create_once
from iopcare.kit.versioned import Stored


def _identifiers(resource: fhir.Resource, field: str) -> list[tuple[str, str]]:
    found = []
    problems = []
    for index, identifier in enumerate(getattr(resource, "identifier", None) or []):
        if not identifier.system or not identifier.value:
            problems.append(
                FieldViolation(f"{field}.identifier[{index}]", "needs both system and value")
            )
        else:
            found.append((str(identifier.system), str(identifier.value)))
    if problems:
        raise InvalidArgument("identifiers must name their system", problems)
    return found


def _require_registry_role(principal: Principal) -> None:
    if principal.role not in codes.REGISTRY_ROLES:
        raise PermissionDenied(
            "only case managers, administrators and system identities register people",
            reason="REGISTRY_DENIED",
        )


def _owners(conn: Connection, identifiers: list[tuple[str, str]]) -> list[str]:
    """The registered patients any of the identifiers names (sorted; more than one is a
    conflict)."""
    i = store.patient_identifier.c
    return sorted(
        {
            str(owner)
            for system, value in identifiers
            for owner in conn.execute(
                select(i.patient_id).where((i.system == system) & (i.value == value))
            ).scalars()
        }
    )


class Registry(ServiceBase):
    # Patients -----------------------------------------------------------------------------------
    def register_patient(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        """Registers a patient, or links new identifiers to the patient one of them already names.

        A person arriving from two hospitals with two MRNs is one patient: if any identifier in
        the request is known, the others are added to that patient (a new version) and it is
        returned; identifiers naming two different patients are refused.
        """
        with self._audit_refusals(principal, audit.CREATE, "Patient"):
            _require_registry_role(principal)
            patient = self._parsed(fhir_json, "Patient")
            identifiers = _identifiers(patient, "fhir_json.Patient")
            if not identifiers:
                raise InvalidArgument(
                    "a patient is registered with at least one identifier (e.g. an MRN)",
                    [FieldViolation("fhir_json.Patient.identifier", "at least one")],
                )

            def _register(uow: UnitOfWork, patient_id: str) -> str:
                owners = _owners(uow.conn, identifiers)
                if len(owners) > 1:
                    raise FailedPrecondition(
                        "these identifiers belong to different patients",
                        reason="IDENTIFIERS_CONFLICT",
                    )
                # A token pinned to its launch patient registers nobody new and links
                # identifiers to no one else (linking changes that patient's record and returns
                # it).
                within_launch_context(principal.patient_limit, owners[0] if owners else "")
                if owners:
                    return self._link(uow, principal, owners[0], identifiers)
                self._register_new(uow, principal, patient_id, patient, identifiers)
                return patient_id

            for attempt in range(3):
                try:
                    result_id, created = create_once(
                        self.db,
                        store.request_log,
                        principal,
                        "RegisterPatient",
                        request_id,
                        _register,
                        new_id,
                        request={"fhir_json": fhir_json},  # audited by _audit_refusals
                    )
                    break
                except IntegrityError:
                    # A concurrent registration of the same person committed first (see
                    # _remember); the next attempt finds it and links to it.
                    if attempt == 2:
                        raise Aborted("the registration raced another; retry it") from None
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            stored_patient = store.patients.load(conn, result_id)
        assert stored_patient is not None  # committed above; patients are never deleted
        return stored_patient

    def _register_new(
        self,
        uow: UnitOfWork,
        principal: Principal,
        patient_id: str,
        patient: fhir.Resource,
        identifiers: list[tuple[str, str]],
    ) -> None:
        """Version 1 of a new patient, its identifiers, its event and its audit row."""
        now = datetime.now(UTC)
        stored = Stored(
            patient_id,
            1,
            patient_id,
            "active" if patient.active is not False else "inactive",
            now,
            fhir.with_identity(patient, patient_id, 1, now),
        )
        store.patients.insert(uow.conn, stored, principal.reference)
        self._remember(uow.conn, patient_id, identifiers)
        store.JOURNAL.record_version(
            uow, principal, audit.CREATE, "Patient", stored, codes.EVENT_PATIENT_CREATED
        )

    def _remember(
        self, conn: Connection, patient_id: str, identifiers: list[tuple[str, str]]
    ) -> None:
        # Inserted without looking first: if a concurrent registration took an identifier since
        # this transaction looked, the primary key refuses it and the whole registration is
        # retried, and then links instead of making a twin.
        conn.execute(
            insert(store.patient_identifier),
            # The same identifier twice in one Patient (HL7's own example f201 does it) is one
            # identifier, not a primary key violation to retry forever.
            [
                {"system": s, "value": v, "patient_id": patient_id}
                for s, v in dict.fromkeys(identifiers)
            ],
        )

    def _link(
        self,
        uow: UnitOfWork,
        principal: Principal,
        patient_id: str,
        identifiers: list[tuple[str, str]],
    ) -> str:
        current = store.patients.load(uow.conn, patient_id)
        assert current is not None
        resource = fhir.parse_resource(current.resource)
        have = set(_identifiers(resource, "Patient"))
        new = [pair for pair in identifiers if pair not in have]
        if not new:
            return patient_id

        def reviser(item: Stored, version: int, now: datetime) -> tuple[str, str, str]:
            data = fhir.to_dict(resource)
            data["identifier"] = [
                *(data.get("identifier") or []),
                *({"system": system, "value": value} for system, value in new),
            ]
            linked = fhir.parse_resource(data, "Patient")
            return fhir.with_identity(linked, patient_id, version, now), item.status, "link"

        why = "another identifier for the same person"
        revised, _ = revise_by(uow, principal, "Patient", patient_id, current.version, reviser, why)
        self._remember(uow.conn, patient_id, new)
        store.JOURNAL.record_version(
            uow,
            principal,
            audit.UPDATE,
            "Patient",
            revised,
            codes.EVENT_PATIENT_UPDATED,
            detail="identifier linked",
        )
        return patient_id

    def get_patient(self, principal: Principal, patient_id: str) -> Stored:
        # A patient's demographics are patient data like the rest: the same access rule (care
        # team, program roles, an EHR's scopes and launch context). Registering people does not
        # open everyone's record to a case manager.
        with self.db.read() as conn:
            patient = store.patients.load(conn, patient_id)
        return self._audited_read(principal, f"Patient/{patient_id}", patient)

    def find_patient(self, principal: Principal, system: str, value: str) -> Stored:
        if not system or not value:
            raise InvalidArgument(
                "an identifier has a system and a value",
                [FieldViolation("system" if not system else "value", "required")],
            )
        i = store.patient_identifier.c
        with self.db.read() as conn:
            patient_id = conn.execute(
                select(i.patient_id).where((i.system == system) & (i.value == value))
            ).scalar()
        if patient_id is None:
            self._audit_alone(principal, audit.SEARCH, "Patient", None, outcome=audit.NOT_FOUND)
            raise NotFound("no patient has that identifier")
        try:
            return self.get_patient(principal, str(patient_id))
        except PermissionDenied:
            # No existence oracle (issue 10 item 15): a caller who may not see the patient gets
            # the answer an unknown identifier gets. The refusal itself is audited (denied, with
            # its reason) by the read above, so a review still sees the attempt.
            raise NotFound("no patient has that identifier") from None

    # Practitioners ------------------------------------------------------------------------------
    def register_practitioner(
        self, principal: Principal, request_id: str, fhir_json: str, resource_type: str
    ) -> Stored:
        """A Practitioner, or a PractitionerRole of a registered practitioner (discipline with a
        SNOMED CT code, organization, contact, active period)."""
        tables = (
            store.practitioners if resource_type == "Practitioner" else store.practitioner_roles
        )
        event = (
            codes.EVENT_PRACTITIONER_CREATED
            if resource_type == "Practitioner"
            else codes.EVENT_PRACTITIONER_ROLE_CREATED
        )
        with self._audit_refusals(principal, audit.CREATE, resource_type):
            _require_registry_role(principal)
            resource = self._parsed(fhir_json, resource_type)

            def _create(uow: UnitOfWork, item_id: str) -> None:
                # Directory resources belong to no patient: their rows are keyed by the
                # practitioner instead (a role by its practitioner), and so are their events.
                owner = item_id
                if resource_type == "PractitionerRole":
                    practitioner_id = fhir.reference_id(
                        resource.practitioner.reference if resource.practitioner else None,
                        "Practitioner",
                    )
                    if (
                        not practitioner_id
                        or store.practitioners.load(uow.conn, practitioner_id) is None
                    ):
                        raise InvalidArgument(
                            "the role's practitioner is not registered",
                            [
                                FieldViolation(
                                    "fhir_json.PractitionerRole.practitioner",
                                    "must reference a registered Practitioner",
                                )
                            ],
                        )
                    owner = practitioner_id
                now = datetime.now(UTC)
                status = "active" if getattr(resource, "active", None) is not False else "inactive"
                stored = Stored(
                    item_id, 1, owner, status, now, fhir.with_identity(resource, item_id, 1, now)
                )
                tables.insert(uow.conn, stored, principal.reference)
                store.JOURNAL.publish_version(uow, resource_type, stored, event)
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.CREATE,
                    resource=f"{resource_type}/{item_id}",
                    patient_id=None,
                )

            item_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                f"Register{resource_type}",
                request_id,
                _create,
                new_id,
                request={"fhir_json": fhir_json},
            )
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            stored_item = tables.load(conn, item_id)
        assert stored_item is not None
        return stored_item

    def get_practitioner(self, principal: Principal, practitioner_id: str) -> Stored:
        with self.db.read() as conn:
            found = store.practitioners.load(conn, practitioner_id)
        if found is None:
            raise NotFound(f"Practitioner/{practitioner_id} not found")
        return found

    def roles_of(self, principal: Principal, practitioner_id: str) -> list[Stored]:
        with self.db.read() as conn:
            return store.practitioner_roles.for_patient(conn, practitioner_id)
