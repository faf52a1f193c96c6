"""Which interaction a REST request asks for (a pure function of method and path)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from iopcare.gateway.errors import FhirHttpError, Problem, http_error

_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# Route kinds.
METADATA = "metadata"
OPERATION_DEFINITION = "operation-definition"
BUNDLE = "bundle"
HANDOFF = "handoff"
HANDOFF_SUMMARY = "handoff-summary"
EXPORT_CSV = "export-csv"
EVERYTHING = "everything"
SEARCH = "search"
CREATE = "create"
READ = "read"
UPDATE = "update"
HISTORY = "history"
VREAD = "vread"


@dataclass(frozen=True)
class Route:
    kind: str
    type: str = ""
    id: str = ""
    version: int = 0


def _not_allowed(method: str, allowed: str) -> FhirHttpError:
    return FhirHttpError(
        405,
        Problem("not-supported", f"{method} is not allowed here; allowed: {allowed}"),
        headers={"Allow": allowed},
    )


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise http_error(400, "value", f"{value[:70]!r} is not a FHIR id (1-64 of A-Za-z0-9-.)")
    return value


def route(method: str, path: str) -> Route:
    """The route of `method` on `path` (relative to the FHIR base, no leading slash).

    Unknown resource types are left to the caller (the registry decides what is served); the
    shape of the path and the method are checked here: 400 for a malformed id, 404 for a path
    that is no FHIR interaction, 405 for a method the interaction does not take.
    """
    parts = [p for p in path.strip("/").split("/") if p] if path.strip("/") else []
    if not parts:
        if method == "POST":
            return Route(BUNDLE)
        raise _not_allowed(method, "POST")
    head = parts[0]
    if head == "metadata" and len(parts) == 1:
        if method != "GET":
            raise _not_allowed(method, "GET")
        return Route(METADATA)
    if head == "$handoff" and len(parts) == 1:
        if method != "POST":
            raise _not_allowed(method, "POST")
        return Route(HANDOFF)
    if not _TYPE.match(head):
        raise http_error(404, "not-found", f"no such path: /{'/'.join(parts)[:100]}")
    if head == "OperationDefinition" and len(parts) == 2:
        if method != "GET":
            raise _not_allowed(method, "GET")
        return Route(OPERATION_DEFINITION, head, parts[1])
    if len(parts) == 1:
        if method == "GET":
            return Route(SEARCH, head)
        if method == "POST":
            return Route(CREATE, head)
        raise _not_allowed(method, "GET, POST")
    if len(parts) == 2 and parts[1] == "_search":
        if method != "POST":
            raise _not_allowed(method, "POST")
        return Route(SEARCH, head)
    if len(parts) == 2 and head == "Encounter" and parts[1] == "$export-csv":
        if method != "GET":
            raise _not_allowed(method, "GET")
        return Route(EXPORT_CSV, head)
    if parts[1] == "_history":
        raise http_error(
            404, "not-supported", "history of a whole type is not served; ask one resource's"
        )
    resource_id = _check_id(parts[1])
    if len(parts) == 2:
        if method == "GET":
            return Route(READ, head, resource_id)
        if method == "PUT":
            return Route(UPDATE, head, resource_id)
        raise _not_allowed(method, "GET, PUT")
    if len(parts) == 3 and parts[2] == "$everything" and head == "Patient":
        if method != "GET":
            raise _not_allowed(method, "GET")
        return Route(EVERYTHING, head, resource_id)
    if len(parts) == 3 and parts[2] == "$handoff-summary" and head == "EpisodeOfCare":
        if method != "GET":
            raise _not_allowed(method, "GET")
        return Route(HANDOFF_SUMMARY, head, resource_id)
    if parts[2] == "_history" and len(parts) in (3, 4):
        if method != "GET":
            raise _not_allowed(method, "GET")
        if len(parts) == 3:
            return Route(HISTORY, head, resource_id)
        if not parts[3].isdigit() or not 1 <= len(parts[3]) <= 9 or int(parts[3]) < 1:
            raise http_error(400, "value", f"{parts[3][:20]!r} is not a version number")
        return Route(VREAD, head, resource_id, int(parts[3]))
    raise http_error(404, "not-found", f"no such path: /{'/'.join(parts)[:100]}")
