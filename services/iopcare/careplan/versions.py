"""Reading past versions: the one way to read the history of any resource careplan versions
(GetResourceVersion and ListResourceVersions; the gateway's `vread` and `_history`)."""

from __future__ import annotations

from dataclasses import dataclass

from iopcare.careplan import store
from iopcare.careplan.base import ServiceBase
from iopcare.careplan.domain.model import MAX_VERSION
from iopcare.careplan.listing import foreign_token, page_scope
from iopcare.kit import paging
from iopcare.kit.auth import Principal
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.versioned import Stored, Version, VersionedTables

#: The versioned resources careplan keeps, by FHIR type.
VERSIONED_TYPES: dict[str, VersionedTables] = {
    name: store.VERSIONED[name]
    for name in (
        "CarePlan",
        "CareTeam",
        "Goal",
        "EpisodeOfCare",
        "Patient",
        "MedicationStatement",
        "MedicationRequest",
        "NutritionOrder",
    )
}


@dataclass(frozen=True)
class PastVersion:
    """One version of a resource as stored, with its Provenance (who, what kind of change, why)."""

    item: Stored
    provenance: Version


def _tables(resource_type: str) -> VersionedTables:
    tables = VERSIONED_TYPES.get(resource_type)
    if tables is None:
        raise InvalidArgument(
            f"{resource_type!r} has no versions here",
            [FieldViolation("resource_type", f"one of {', '.join(VERSIONED_TYPES)}")],
        )
    return tables


class VersionReads(ServiceBase):
    """vread and _history of every versioned resource, access as for reading the resource."""

    def resource_version(
        self, principal: Principal, resource_type: str, item_id: str, version: int
    ) -> Stored:
        """One version of any versioned resource (the FHIR vread), access as for reading it."""
        tables = _tables(resource_type)
        if not 1 <= version <= MAX_VERSION:
            raise InvalidArgument(
                "version must be >= 1", [FieldViolation("version", "a version number >= 1")]
            )
        with self.db.read() as conn:
            item = tables.load_version(conn, item_id, version)
        return self._audited_read(principal, f"{resource_type}/{item_id}/_history/{version}", item)

    def resource_versions(
        self,
        principal: Principal,
        resource_type: str,
        item_id: str,
        page_size: int,
        page_token: str = "",
    ) -> tuple[list[PastVersion], str]:
        """A page of the versions of one resource, newest first, each as stored with its
        Provenance (the FHIR `_history`), and the token of the next page ("" after the last).
        The token holds the last version returned: the history only grows at its newest end, so
        paging through it never repeats or skips a version."""
        tables = _tables(resource_type)
        size = paging.page_size(page_size)
        scope = page_scope("ListResourceVersions", resource_type, item_id)
        position = paging.decode(page_token, {"before": int, "q": str})
        if position is not None and position["q"] != scope:
            raise foreign_token()
        before = int(position["before"]) if position is not None else None
        with self.db.read() as conn:
            current = tables.load(conn, item_id)
            entries = tables.versions(conn, item_id, size + 1, before) if current else []
            found = [
                PastVersion(item, entry)
                for entry in entries[:size]
                if (item := tables.load_version(conn, item_id, entry.version)) is not None
            ]
        self._audited_read(principal, f"{resource_type}/{item_id}/_history", current)
        token = ""
        if len(entries) > size and found:
            token = paging.encode({"before": found[-1].provenance.version, "q": scope})
        return found, token
