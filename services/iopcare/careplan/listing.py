"""Lists of one patient's resources, a page at a time (AIP-158).

Every List RPC pages the same way: a stable order (oldest first: when created, then id; measures
by when they were measured, then when recorded, then id), keyset positions rather than offsets
(a list that grows while a client pages through it never repeats or skips an item), and an opaque
token (`kit.paging`) that carries the last item returned and a digest of the query it belongs to,
so a token is refused with a different patient or filter instead of silently paging through
another list. Each page is a search in the patient's record: access is checked and the search
audited (`kit.teams.audited_search`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Connection

from iopcare.careplan import store
from iopcare.careplan.base import ServiceBase
from iopcare.kit import paging, teams
from iopcare.kit.auth import Principal
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.versioned import Stored, VersionedTables

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the token of the next one ("" after the last page)."""

    items: list[T]
    next_page_token: str


#: (listings, principal, patient_id, page_size, page_token) -> the page.
VersionedList = Callable[["Listings", Principal, str, int, str], Page[Stored]]


def page_scope(*query: str) -> str:
    """A short digest of what a list was asked for (operation and filters): a page token is
    valid only for the query that issued it."""
    return hashlib.sha256("\x1f".join(query).encode()).hexdigest()[:16]


def foreign_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token belongs to another query",
        [FieldViolation("page_token", "use a token with the request that returned it")],
    )


def _after(page_token: str, scope: str) -> str | None:
    """The id of the last item of the previous page, or None for the first page."""
    position = paging.decode(page_token, {"after": str, "q": str})
    if position is None:
        return None
    if position["q"] != scope:
        raise foreign_token()
    return str(position["after"])


def _versioned(resource: str, tables: VersionedTables) -> VersionedList:
    """The List of one versioned resource type (a method of `Listings`): a page of the patient's
    resources, oldest first (when created, then id)."""

    def listed(
        self: Listings, principal: Principal, patient_id: str, page_size: int, page_token: str
    ) -> Page[Stored]:
        return self._page(
            principal,
            resource,
            patient_id,
            page_size,
            page_token,
            lambda conn, limit, after: store.patient_page(conn, tables, patient_id, limit, after),
            lambda item: item.id,
        )

    return listed


class Listings(ServiceBase):
    """The List RPCs of a patient's plans, teams, goals, episodes and measures."""

    def _page(
        self,
        principal: Principal,
        resource: str,
        patient_id: str,
        page_size: int,
        page_token: str,
        query: Callable[[Connection, int, str | None], Sequence[T]],
        key: Callable[[T], str],
        *filters: str,
    ) -> Page[T]:
        """A page of `query(conn, limit, after_id)`, access checked and the search audited."""
        size = paging.page_size(page_size)
        scope = page_scope(resource, patient_id, *filters)
        after = _after(page_token, scope)
        more: list[bool] = []

        def read(conn: Connection) -> list[T]:
            rows = list(query(conn, size + 1, after))
            more.append(len(rows) > size)
            return rows[:size]

        items = teams.audited_search(
            self.db, store.audit_log, self.access, principal, resource, patient_id, read
        )
        token = paging.encode({"after": key(items[-1]), "q": scope}) if more[0] and items else ""
        return Page(items, token)

    #: A patient's plans (the gateway's `CarePlan?patient=` search), teams, goals and episodes.
    care_plans = _versioned("CarePlan", store.plans)
    care_teams = _versioned("CareTeam", store.teams)
    goals = _versioned("Goal", store.goals)
    episodes = _versioned("EpisodeOfCare", store.episodes)
    nutrition_orders = _versioned("NutritionOrder", store.nutrition_orders)

    def measures(
        self,
        principal: Principal,
        patient_id: str,
        code: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[tuple[str, str]]:
        """A patient's recorded measures (id and FHIR JSON), oldest first, optionally of one
        code."""
        return self._page(
            principal,
            "Observation",
            patient_id,
            page_size,
            page_token,
            lambda conn, limit, after: store.measures_page(
                conn, patient_id, code or None, limit, after
            ),
            lambda row: row[0],
            code,
        )
