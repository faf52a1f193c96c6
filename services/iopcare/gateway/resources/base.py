"""What every resource handler offers, and what the router and the CapabilityStatement read.

A handler implements only the interactions its service has RPCs for; `interactions()` reads
which methods a subclass overrides, so the router and `GET /metadata` cannot disagree about what
is supported. A new resource (Schedule, Slot, DocumentReference once scheduling and notes grow
the RPCs) is one subclass registered in `registry.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, ParamSpec, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from iopcare.gateway.client import Caller, Services
from iopcare.gateway.errors import from_kit, http_error
from iopcare.gateway.resources.paths import fhir_paths
from iopcare.gateway.search import COMMON, REFERENCE, SearchParam
from iopcare.kit import fhir

#: Pages of a listing read for one search at most (1,000 items each).
MAX_PAGES = 10

P = ParamSpec("P")
R = TypeVar("R")

#: `patient` and `subject`, both the resource's subject (Communication, Flag, DocumentReference).
SUBJECT_PARAMS = (
    SearchParam("patient", REFERENCE, ("subject",), "the patient"),
    SearchParam("subject", REFERENCE, ("subject",), "the patient"),
)


@dataclass(frozen=True)
class Found:
    """One version of a resource as a service stored it."""

    id: str
    version: int
    patient_id: str
    last_updated: datetime | None
    json: str
    #: True when the owning service released this copy for disclosure outside the program
    #: after its own consent check (notes' DiscloseNote: 42 CFR Part 2 labels, NORDSCLCD and the
    #: redisclosure notice already applied), so the gateway's label rule has been applied there.
    released: bool = False
    _parsed: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)

    @property
    def resource(self) -> dict[str, Any]:
        if not self._parsed:
            self._parsed.append(json.loads(self.json))
        return self._parsed[0]


@dataclass(frozen=True)
class Change:
    """An update: the resource's id and new content, the version the client based it on, and
    the service request's idempotency key (empty: none; a repeat of the same change returns the
    first result: writes.update derives it)."""

    resource_id: str
    resource: dict[str, Any]
    expected_version: int
    request_id: str = ""


@dataclass(frozen=True)
class Created:
    """What a create did: the stored resource, and whether it is new (201) or an existing one
    the service matched (200; e.g. a patient registered under a known identifier)."""

    found: Found
    created: bool = True


class ResourceHandler:
    """Base of the handlers. Subclasses set the class attributes and override what they can."""

    #: The FHIR resource type.
    type: ClassVar[str] = ""
    #: The service that owns it: careplan, scheduling or notes (transactions must not span two).
    service: ClassVar[str] = ""
    #: Search parameters beyond _id and _lastUpdated; a `reference` one named patient or subject
    #: chooses the patient whose record is searched.
    params: ClassVar[tuple[SearchParam, ...]] = ()
    #: `_include` values supported (`CarePlan:subject`): each names the patient.
    includes: ClassVar[tuple[str, ...]] = ()
    #: Whether updates need the version the client read (If-Match or meta.versionId).
    versioned_update: ClassVar[bool] = True
    #: Whether each resource belongs to one patient (searched per patient, part of
    #: `Patient/{id}/$everything`); calendars and free slots do not.
    compartment: ClassVar[bool] = True
    #: Whether vread serves earlier versions too (CapabilityStatement readHistory); false where
    #: the service keeps only the current version and vread serves just that.
    reads_old_versions: ClassVar[bool] = True
    documentation: ClassVar[str] = ""

    def __init__(self, services: Services) -> None:
        self.services = services

    def send(self, caller: Caller, request: Any) -> Any:
        """Calls the RPC of the owning service that `request` is for (`GetGoalRequest` goes to
        `GetGoal`): one way to call every service, so the handlers are tables of requests."""
        return self.services.send(caller, self.service, request)

    def patient_pages(
        self, caller: Caller, patient_id: str | None, request: Callable[..., Any], items: str
    ) -> list[Any]:
        """Every item of the patient's paged listing (`request` is its request message type);
        the search must name the patient (`require_patient`)."""
        patient = require_patient(patient_id, self.type)
        return pages(
            lambda token: self.send(
                caller, request(patient_id=patient, page_size=1000, page_token=token)
            ),
            items,
        )

    def current_version_only(self, caller: Caller, resource_id: str, version: int) -> Found:
        """vread where the service keeps only the current version: that one, or 404."""
        current = self.read(caller, resource_id)
        if version != current.version:
            raise http_error(
                404,
                "not-found",
                f"{self.type}/{resource_id} version {version} is not served (the current "
                f"version is {current.version})",
            )
        return current

    # Interactions: override the ones the service supports.
    def read(self, caller: Caller, resource_id: str) -> Found:
        raise NotImplementedError

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        raise NotImplementedError

    def history(self, caller: Caller, resource_id: str) -> list[Found]:
        raise NotImplementedError

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        raise NotImplementedError

    def update(self, caller: Caller, change: Change) -> Found:
        """The new version."""
        raise NotImplementedError

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        """The candidates of a search in one patient's record (the gateway filters them)."""
        raise NotImplementedError

    @classmethod
    def interactions(cls) -> list[str]:
        """The FHIR interaction codes this handler supports, from what it overrides."""
        names = {
            "read": "read",
            "vread": "vread",
            "history": "history-instance",
            "create": "create",
            "update": "update",
            "search": "search-type",
        }
        return [
            code
            for method, code in names.items()
            if getattr(cls, method) is not getattr(ResourceHandler, method)
        ]

    @classmethod
    def search_params(cls) -> tuple[SearchParam, ...]:
        return COMMON + cls.params

    @classmethod
    def supports(cls, interaction: str) -> bool:
        return interaction in cls.interactions()


class TableHandler(ResourceHandler):
    """A handler as a table: the request message of each RPC its service has for the resource
    and the response field that holds it. The mixins below answer an interaction from the table
    (`send` finds the RPC by the message's name), so such a handler is its table, not code."""

    #: The Get RPC's request (read by id), and the request of the patient's paged listing.
    get_request: ClassVar[Any] = None
    list_request: ClassVar[Any] = None
    #: The service contract's mapping of a FHIR resource and the request id to the create
    #: request (a plain function: read through the class, never bound as a method).
    create_command: ClassVar[Callable[[dict[str, Any], str], Any]]
    #: The response field holding the resource, and the one holding a listing's resources.
    field: ClassVar[str] = ""
    items: ClassVar[str] = ""
    #: A write's refusal names the service's fields as these FHIR elements (paths.fhir_paths).
    paths: ClassVar[dict[str, str]] = {}

    def stored(self, message: Any) -> Found:
        """The service's message carrying the resource, as a Found (its time meta.lastUpdated)."""
        return found_by_meta(message)

    def one(self, caller: Caller, request: Any) -> Found:
        """The resource the response to `request` holds in `field`."""
        return self.stored(getattr(self.send(caller, request), self.field))

    def written(self, caller: Caller, request: Any) -> Found:
        """`one` for a write: a refusal points at the client's FHIR elements."""
        with fhir_paths(self.paths):
            return self.one(caller, request)


class TableRead(TableHandler):
    def read(self, caller: Caller, resource_id: str) -> Found:
        return self.one(caller, self.get_request(id=resource_id))


class TableCreate(TableHandler):
    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        request = command(type(self).create_command, resource, request_id)
        return Created(self.written(caller, request))


class TableSearch(TableHandler):
    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        listed = self.patient_pages(caller, patient_id, self.list_request, self.items)
        return [self.stored(item) for item in listed]


def require_patient(patient_id: str | None, resource_type: str) -> str:
    if not patient_id:
        raise http_error(
            400,
            "too-costly",
            f"a {resource_type} search needs the patient (patient= or subject=): records are "
            "searched one patient at a time",
            "patient",
        )
    return patient_id


def local_reference(reference: str, base_url: str) -> str | None:
    """`reference` as this server's relative reference: a relative one as it is, an absolute URL
    under this gateway's own FHIR base (`base_url`) without the base; None for an absolute URL
    of any other server (`https://other.example/fhir/Patient/1` is their patient 1, not ours)."""
    if "://" not in reference:
        return reference
    base = base_url.rstrip("/") + "/"
    if base_url and reference.startswith(base):
        return reference[len(base) :]
    return None


def reference_id(reference: Any, resource_type: str) -> str:
    """The id of `Patient/123` (or `Patient/123/_history/2`), or ''. An absolute URL is another
    server's resource and gives '' (`local_reference` first turns one under our own base into a
    relative reference)."""
    if not isinstance(reference, str) or "://" in reference:
        return ""
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return ""


def command(mapping: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """The request a service's contract maps a FHIR resource to; its refusal (the FHIR element
    that cannot be mapped) as a 422 OperationOutcome."""
    try:
        return mapping(*args, **kwargs)
    except fhir.FhirError as exc:
        raise from_kit(exc) from None


def keyed(request: R, request_id: str) -> R:
    """`request` (a service's update request, or None: no change) with `request_id` set."""
    if request is not None and request_id:
        request.request_id = request_id  # type: ignore[attr-defined]
    return request


def pages(fetch: Callable[[str], Any], items: str) -> list[Any]:
    """Every item of a paged listing (at most MAX_PAGES pages): `fetch(page_token)`."""
    results: list[Any] = []
    token = ""
    for _ in range(MAX_PAGES):
        response = fetch(token)
        results.extend(getattr(response, items))
        token = response.next_page_token
        if not token:
            break
    return results


def time_of(value: Timestamp) -> datetime | None:
    return value.ToDatetime(tzinfo=UTC) if value.seconds or value.nanos else None


def timestamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def meta_version(resource_json: str) -> tuple[int, datetime | None]:
    """A stored resource's meta.versionId (1 when absent) and meta.lastUpdated."""
    try:
        meta = json.loads(resource_json).get("meta", {})
    except (ValueError, AttributeError):
        return 1, None
    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    try:
        version = int(meta.get("versionId", 1))
    except (TypeError, ValueError, AttributeError):
        version = 1
    try:
        when = datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None
    except (ValueError, AttributeError):
        when = None
    return version, when


def found_by_meta(message: Any, patient_id: str | None = None) -> Found:
    """A service's message carrying a stored resource (id, version, patient_id, fhir_json) as a
    Found, its time the resource's meta.lastUpdated; `patient_id` for a message without one."""
    return Found(
        message.id,
        int(message.version),
        message.patient_id if patient_id is None else patient_id,
        meta_version(message.fhir_json)[1],
        message.fhir_json,
    )
