"""The gRPC edge of utilization review (Coverage, authorizations), mixed into the care plan
servicer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cached_property
from typing import Any

from google.type import date_pb2

from iopcare.careplan.domain.ur_packet import ContinuedStay
from iopcare.careplan.domain.utilization import ASAM_LEVEL, AsamRating
from iopcare.careplan.registry import Registry
from iopcare.careplan.utilization import Authorized, Utilization
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.kit.auth import current_principal
from iopcare.kit.errors import FieldViolations
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.servicer import creates, gets, lists, rpc
from iopcare.kit.versioned import Stored


def asam_of(request: Any) -> list[AsamRating]:
    """The ASAM ratings of an AdmitPatient or ChangeLevelOfCare request."""
    return [AsamRating(r.dimension, r.rating, r.note) for r in request.asam_ratings]


def asam_messages(ratings: Sequence[AsamRating]) -> list[pb.AsamRating]:
    return [pb.AsamRating(dimension=r.dimension, rating=r.rating, note=r.note) for r in ratings]


def coverage_message(item: Stored) -> pb.Coverage:
    return pb.Coverage(
        id=item.id,
        version=item.version,
        patient_id=item.patient_id,
        status=item.status,
        update_time=timestamp(item.updated_at),
        fhir_json=item.resource,
    )


def authorization_message(authorized: Authorized) -> pb.Authorization:
    item, facts = authorized.item, authorized.facts
    message = pb.Authorization(
        id=item.id,
        version=item.version,
        patient_id=item.patient_id,
        status=item.status,
        update_time=timestamp(item.updated_at),
        fhir_json=item.resource,
        number=facts.number,
        episode_id=facts.episode_id,
        level=facts.level,
        asam_level=ASAM_LEVEL[facts.level],
        units_authorized=facts.units,
        unit=facts.unit,
        units_used=authorized.used,
        units_remaining=authorized.remaining,
        tasks=list(authorized.tasks),
    )
    for field, day in (("start", facts.start), ("end", facts.end)):
        getattr(message, field).CopyFrom(date_pb2.Date(year=day.year, month=day.month, day=day.day))
    return message


class UtilizationRpcs:
    """Create/Get/List of Coverage and authorizations, on the registry's database, access rule
    and relay."""

    registry: Registry

    @cached_property
    def utilization(self) -> Utilization:
        r = self.registry
        return Utilization(
            r.db,
            max_resource_bytes=r.max_resource_bytes,
            notify_outbox=r.notify_outbox,
            access=r.access,
        )

    CreateCoverage = creates(
        lambda s: s.utilization.create_coverage,
        pb.CreateCoverageResponse,
        "coverage",
        coverage_message,
    )
    GetCoverage = gets(
        lambda s: s.utilization.get_coverage, pb.GetCoverageResponse, "coverage", coverage_message
    )
    ListCoverages = lists(
        lambda s: s.utilization.coverages,
        pb.ListCoveragesResponse,
        "coverages",
        coverage_message,
    )
    CreateAuthorization = creates(
        lambda s: s.utilization.create_authorization,
        pb.CreateAuthorizationResponse,
        "authorization",
        authorization_message,
    )
    GetAuthorization = gets(
        lambda s: s.utilization.get_authorization,
        pb.GetAuthorizationResponse,
        "authorization",
        authorization_message,
    )
    ListAuthorizations = lists(
        lambda s: s.utilization.authorizations,
        pb.ListAuthorizationsResponse,
        "authorizations",
        authorization_message,
    )
    GetUtilizationReviewPacket = rpc(
        lambda s, r: s.utilization.packet(
            current_principal(),
            require_id(r.id, "id"),
            continued_stay(r),
            r.base_url or DEFAULT_BASE,
        ),
        lambda text: pb.GetUtilizationReviewPacketResponse(fhir_json=text),
    )


#: Where a packet's fullUrls point when the caller names no FHIR base.
DEFAULT_BASE = "https://iopcare.invalid/fhir"


def continued_stay(request: Any) -> ContinuedStay:
    """The continued stay a packet requests (INVALID_ARGUMENT naming a bad field)."""
    problems = FieldViolations()
    if request.requested_units < 0:
        problems.add("requested_units", "0 or more")
    if len(request.reason) > 2000:
        problems.add("reason", "at most 2000 characters")
    end, through = request.requested_end, None
    if end.year or end.month or end.day:
        try:
            through = date(end.year, end.month, end.day)
        except ValueError:
            problems.add("requested_end", "a whole calendar date: year, month and day")
    problems.raise_if_any("the continued stay requested is invalid")
    return ContinuedStay(request.requested_units, through, request.reason)
