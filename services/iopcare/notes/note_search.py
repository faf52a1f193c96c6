"""Searching a patient's clinical notes under the privacy rules: notes the caller may not read
are not hits; for an outside system's disclosure search, the hits are what may leave."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import Connection

from iopcare.kit import audit, paging, privacy
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import FieldViolations, PermissionDenied
from iopcare.notes import fhir_map, store
from iopcare.notes.clinical import facts
from iopcare.notes.cursor import seq_after
from iopcare.notes.disclosure import DISCLOSING_ROLES, consent_facts, recipient_of
from iopcare.notes.domain import documents
from iopcare.notes.domain.text import FORBIDDEN_CHARACTERS, has_forbidden_characters
from iopcare.notes.usecase import UseCase

#: A search page reads at least this many rows per query, and at most MAX_SCANNED rows in all.
SEARCH_BATCH = 200
MAX_SCANNED = 2_000


@dataclass(frozen=True)
class NoteFilter:
    """What a search asks for besides the patient."""

    author: str = ""
    kinds: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    words: str = ""


@dataclass
class _Scan:
    """What a page's scan found: the visible notes (one more than the page when there is a next
    page), what the rules withheld by reason, whether break-glass showed any, and where it
    stopped."""

    query: store.NoteQuery
    visible: list[store.StoredNote] = field(default_factory=list)
    withheld: dict[str, int] = field(default_factory=dict)
    flagged: bool = False
    exhausted: bool = False


def check_filter(f: NoteFilter) -> None:
    problems = FieldViolations()
    for i, kind in enumerate(f.kinds):
        if kind not in documents.NOTE_KINDS:
            problems.add(f"kinds[{i}]", f"one of {', '.join(documents.NOTE_KINDS)}")
    if len(f.words) > 500:
        problems.add("text", "at most 500 characters")
    if has_forbidden_characters(f.words):
        problems.add("text", FORBIDDEN_CHARACTERS)
    if len(f.author) > 200 or has_forbidden_characters(f.author):
        problems.add("author", "a reference such as Practitioner/{id}")
    if f.since and f.until and f.until <= f.since:
        problems.add("date_to", "after date_from")
    problems.raise_if_any("the search is invalid")


class NoteSearch(UseCase):
    def search(
        self,
        principal: Principal,
        patient_id: str,
        wanted: NoteFilter,
        *,
        page_size: int = 0,
        page_token: str = "",
        recipient: str = "",
    ) -> tuple[list[store.StoredNote], str]:
        """A patient's notes, newest first, that the caller may read: refused notes are not hits
        (test-matrix C1: absent from search), and the search records how many were withheld.

        With a `recipient` (the FHIR gateway's service identity disclosing outside the program),
        the hits are the notes `disclose` would release to it, each as the copy that may leave."""
        if recipient:
            recipient = self._disclosing_to(principal, recipient, patient_id)
        check_filter(wanted)
        size = paging.page_size(page_size)
        before_seq = seq_after(page_token)
        basis = self.basis(principal, audit.SEARCH, "DocumentReference", patient_id)
        viewer = privacy.Viewer(principal.reference, principal.role, basis)
        # The filter's fields are the query's of the same names.
        query = store.NoteQuery(patient_id, **asdict(wanted), before_seq=before_seq, limit=size + 1)
        scan = _Scan(query)
        with self.db.read() as conn:
            self._scan(conn, scan, size, viewer, recipient)
        visible, token = scan.visible, ""
        if len(visible) > size:
            visible = visible[:size]
            token = paging.encode({"seq": visible[-1].seq})
        elif not scan.exhausted and scan.query.before_seq is not None:
            # The scan stopped before the end: go on after the last note it looked at.
            token = paging.encode({"seq": scan.query.before_seq})
        if recipient:
            basis = f"{basis}; disclosed to {recipient}"
        self._audit_hits(principal, patient_id, basis, visible, scan.withheld, scan.flagged)
        return visible, token

    def _disclosing_to(self, principal: Principal, asked: str, patient_id: str) -> str:
        """The recipient of a disclosure search (the caller itself), for a disclosing service."""
        recipient = recipient_of(self.db, principal, asked, "DocumentReference", patient_id)
        if principal.role not in DISCLOSING_ROLES:
            self.audit_access(
                principal,
                audit.SEARCH,
                "DocumentReference",
                patient_id,
                f"disclosure search for {recipient}: not a disclosing service",
                outcome=audit.DENIED,
            )
            raise PermissionDenied(
                "disclosure outside the program is done by the gateway's service identity",
                reason="NOT_A_DISCLOSING_SERVICE",
            )
        return recipient

    @staticmethod
    def _scan(
        conn: Connection, scan: _Scan, size: int, viewer: privacy.Viewer, recipient: str
    ) -> None:
        """Reads notes until the page is full (one more than `size`), the notes end, or
        MAX_SCANNED rows were read.

        Why bounded: refused notes are filtered after the query, so the scan fetches in
        batches of at least SEARCH_BATCH rows, and at most MAX_SCANNED rows per page: a caller
        refused most of a patient's notes gets a short (even empty) page and a token to go on
        from where the scan stopped, not one call that reads them all."""
        now = datetime.now(UTC)
        # Read in the transaction that decides, as `disclose` does.
        consents = consent_facts(conn, scan.query.patient_id) if recipient else []
        scanned = 0
        while len(scan.visible) <= size and not scan.exhausted and scanned < MAX_SCANNED:
            query = replace(
                scan.query, limit=min(max(size + 1, SEARCH_BATCH), MAX_SCANNED - scanned)
            )
            batch = store.search_notes(conn, query)
            scanned += len(batch)
            scan.exhausted = len(batch) < query.limit
            scan.query = query
            for note in batch:
                if len(scan.visible) > size:
                    break  # the page is full; the rest is the next page's
                if recipient:
                    released = privacy.may_disclose(facts(note), recipient, consents, now)
                    if released.allowed:
                        copy = fhir_map.disclosed(
                            note.resource, released.add_labels, released.notice
                        )
                        scan.visible.append(replace(note, resource=copy))
                    else:
                        scan.withheld[released.reason] = scan.withheld.get(released.reason, 0) + 1
                else:
                    decision = privacy.may_read(viewer, facts(note))
                    if decision.allowed:
                        scan.visible.append(note)
                        scan.flagged = scan.flagged or decision.flagged
                    else:
                        scan.withheld[decision.reason] = scan.withheld.get(decision.reason, 0) + 1
                scan.query = replace(scan.query, before_seq=note.seq)

    def _audit_hits(
        self,
        principal: Principal,
        patient_id: str,
        basis: str,
        hits: list[store.StoredNote],
        withheld: dict[str, int],
        flagged: bool,
    ) -> None:
        """One row for the search (its basis, and what the privacy rules withheld), one per hit:
        every note a search shows is a disclosure the audit can account for."""
        held = ", ".join(f"{n} {reason}" for reason, n in sorted(withheld.items()))
        detail = f"{len(hits)} hits; {basis}" + (f"; withheld {held}" if held else "")
        if flagged:
            detail += "; FLAGGED for break-glass review"
        now = datetime.now(UTC)
        row = {
            "time": now,
            "principal": principal.subject,
            "role": principal.role,
            "action": audit.SEARCH,
            "patient_id": patient_id,
            "outcome": audit.SUCCESS,
        }
        rows = [{**row, "resource": "DocumentReference", "detail": detail}]
        rows += [
            {**row, "resource": f"DocumentReference/{n.id}", "detail": "search hit"} for n in hits
        ]
        with UnitOfWork(self.db) as uow:
            store.JOURNAL.audit_rows(uow, rows)
            uow.commit()
