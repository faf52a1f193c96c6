"""Family members (FHIR RelatedPerson): recorded by the patient's team, read and listed under the
same care team rule as the rest of the record (domain rules in `domain.family`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection

from iopcare.careplan import codes, store
from iopcare.careplan.base import Asked
from iopcare.careplan.domain.family import (
    FamilyMember,
    birth_date_of,
    check_family_member,
    check_guardian_of_minor,
    may_receive_information,
    sharing_of,
)
from iopcare.careplan.listing import Listings, Page, _versioned
from iopcare.kit import audit, fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.versioned import Stored


@dataclass(frozen=True)
class Relative:
    """A stored RelatedPerson and whether the team may give them information today."""

    item: Stored
    may_receive_information: bool
    basis: str


def registered_birth_date(conn: Connection, patient_id: str) -> date | None:
    """The patient's birth date in the registry (None: not registered, or no whole date)."""
    patient = store.patients.load(conn, patient_id)
    return birth_date_of(json.loads(patient.resource)) if patient is not None else None


def _member(item: Stored) -> FamilyMember | None:
    """The stored RelatedPerson's facts; None if it no longer meets the rules (stored under
    older ones): it then receives no information until a new version corrects it."""
    try:
        return check_family_member(json.loads(item.resource))
    except InvalidArgument:
        return None


class Family(Listings):
    """Family members: create, read, and the patient's list (a page at a time)."""

    #: A patient's related people, oldest first (the gateway's `RelatedPerson?patient=`).
    related_persons_page = _versioned("RelatedPerson", store.related_persons)

    def related_persons(
        self, principal: Principal, patient_id: str, page_size: int, page_token: str
    ) -> Page[Relative]:
        found = self.related_persons_page(principal, patient_id, page_size, page_token)
        with self.db.read() as conn:  # one patient: one birth date for the whole page
            birth = registered_birth_date(conn, patient_id)
        return Page([_relative(item, birth) for item in found.items], found.next_page_token)

    def create_related_person(
        self, principal: Principal, request_id: str, fhir_json: str
    ) -> Relative:
        """Records a family member (or school contact) of a patient: the patient's team, as for
        any write to the record. A guardian's authority is checked against the patient's
        registered birth date (a minor), in the same transaction as the write."""
        with self._audit_refusals(principal, audit.CREATE, "RelatedPerson"):
            resource = self._parsed(fhir_json, "RelatedPerson")
            if resource.id or resource.meta:
                raise InvalidArgument(
                    "the server assigns id and meta",
                    [FieldViolation("fhir_json.RelatedPerson.id", "leave id and meta out")],
                )
            member = check_family_member(fhir.to_dict(resource))

        def build(uow: UnitOfWork, item_id: str, now: datetime) -> str:
            birth = registered_birth_date(uow.conn, member.patient_id)
            check_guardian_of_minor(member, birth, now.date())
            return fhir.with_identity(resource, item_id, 1, now)

        asked = Asked(principal, request_id, {"fhir_json": fhir_json})
        item = self._create_versioned(
            asked,
            "RelatedPerson",
            member.patient_id,
            "active" if resource.active is not False else "inactive",
            codes.EVENT_RELATED_PERSON_CREATED,
            build,
        )
        return self.relative(item)

    def get_related_person(self, principal: Principal, item_id: str) -> Relative:
        with self.db.read() as conn:
            item = store.related_persons.load(conn, item_id)
        return self.relative(self._audited_read(principal, f"RelatedPerson/{item_id}", item))

    def relative(self, item: Stored) -> Relative:
        """A RelatedPerson the caller may see, with whether it may receive information today."""
        with self.db.read() as conn:
            birth = registered_birth_date(conn, item.patient_id)
        return _relative(item, birth)


def _relative(item: Stored, birth: date | None) -> Relative:
    """`item` with whether it may receive information today, given the patient's birth date."""
    member = _member(item)
    allowed = (
        member is not None
        and item.status == "active"
        and may_receive_information(member, birth, datetime.now(UTC).date())
    )
    return Relative(item, allowed, sharing_of(json.loads(item.resource))[0])
