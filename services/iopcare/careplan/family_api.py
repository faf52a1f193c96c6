"""The gRPC edge of family members (RelatedPerson), mixed into the care plan servicer."""

from __future__ import annotations

from functools import cached_property

from iopcare.careplan.family import Family, Relative
from iopcare.careplan.registry import Registry
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.kit.protoconv import timestamp
from iopcare.kit.servicer import creates, gets, lists


def related_person_message(relative: Relative) -> pb.RelatedPerson:
    item = relative.item
    return pb.RelatedPerson(
        id=item.id,
        version=item.version,
        patient_id=item.patient_id,
        status=item.status,
        update_time=timestamp(item.updated_at),
        fhir_json=item.resource,
        may_receive_information=relative.may_receive_information,
        information_basis=relative.basis,
    )


class FamilyRpcs:
    """CreateRelatedPerson, GetRelatedPerson and ListRelatedPersons, on the registry's database,
    access rule and relay."""

    registry: Registry

    @cached_property
    def family(self) -> Family:
        r = self.registry
        return Family(
            r.db,
            max_resource_bytes=r.max_resource_bytes,
            notify_outbox=r.notify_outbox,
            access=r.access,
        )

    CreateRelatedPerson = creates(
        lambda s: s.family.create_related_person,
        pb.CreateRelatedPersonResponse,
        "related_person",
        related_person_message,
    )
    GetRelatedPerson = gets(
        lambda s: s.family.get_related_person,
        pb.GetRelatedPersonResponse,
        "related_person",
        related_person_message,
    )
    ListRelatedPersons = lists(
        lambda s: s.family.related_persons,
        pb.ListRelatedPersonsResponse,
        "related_persons",
        related_person_message,
    )
