"""A clinician's own stream (`WatchThread` with `addressed_to_me`): every message addressed to
them in any patient's thread, as it is committed. This is how the clinician on call outside
program hours, often on none of the patient's teams, receives the alerts routed to them.

Access: each message delivered names the caller among its recipients, which is the basis of the
access (audited per delivered message's patient, basis `recipient`); the rest of those threads
stays closed to them. Only practitioners have such a stream: a patient's token, an outside
system or a token pinned to a launch patient is refused.

Ordering: messages are stored with a sequence that PostgreSQL hands out at insert, and messages
of different patients may commit out of sequence order (each thread's lock orders one thread
only). The stream therefore re-reads, besides what follows its cursor, what was stored in the
last `LATE_COMMIT_WINDOW` and drops what it delivered already: a late commit is delivered, not
skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from iopcare.kit import audit, paging
from iopcare.kit.access import EHR_ROLE
from iopcare.kit.auth import Principal
from iopcare.kit.errors import PermissionDenied, ResourceExhausted
from iopcare.notes import store, watch
from iopcare.notes.cursor import seq_after
from iopcare.notes.store import oncall as oncall_store
from iopcare.notes.thread import Thread

#: How far back each re-read looks for messages committed after later ones.
LATE_COMMIT_WINDOW = timedelta(seconds=30)
_BATCH = 100


def _refuse_unless_clinician(principal: Principal) -> None:
    if (
        principal.practitioner_id is None
        or principal.role in ("patient", EHR_ROLE)
        or principal.patient_limit is not None
    ):
        raise PermissionDenied(
            "only a practitioner watches the messages addressed to them",
            reason="NOT_A_PRACTITIONER",
        )


class Inbox:
    """The addressed-to-me stream, on the thread use case's database, watchers and places."""

    def __init__(self, thread: Thread) -> None:
        self.thread = thread

    @contextmanager
    def watching(self, principal: Principal, after_token: str) -> Iterator[int]:
        """Opens the caller's stream for as long as the block runs; yields where it starts."""
        resume = seq_after(after_token, "resume_token")
        with self.thread.refusals(principal, audit.SEARCH, "Communication"):
            _refuse_unless_clinician(principal)
        places = self.thread._watch_places
        try:
            places.acquire(principal.subject)
        except ResourceExhausted:
            with self.thread.refusals(principal, audit.SEARCH, "Communication"):
                raise
        try:
            with self.thread.db.read() as conn:
                start = (
                    resume
                    if resume is not None
                    else oncall_store.last_addressed_seq(conn, principal.reference)
                )
            yield start
        finally:
            places.release(principal.subject)

    def follow(
        self, principal: Principal, cursor: int, alive: Callable[[], bool]
    ) -> Iterator[tuple[store.StoredMessage, str]]:
        """The messages addressed to the caller after `cursor`, as they are committed, each
        with the token to resume after it."""
        watchers = self.thread.watchers
        key = watch.inbox_key(principal.reference)
        delivered: dict[int, datetime] = {}
        while alive() and not watchers.closed:
            seen = watchers.counter(key)
            now = datetime.now(UTC)
            for seq in [s for s, at in delivered.items() if at < now - 2 * LATE_COMMIT_WINDOW]:
                del delivered[seq]
            with self.thread.db.read() as conn:
                found = oncall_store.addressed_to(
                    conn, principal.reference, cursor, now - LATE_COMMIT_WINDOW, _BATCH
                )
                batch = [
                    message
                    for seq, message_id in found
                    if seq not in delivered
                    for message in [store.load_message(conn, message_id)]
                    if message is not None
                ]
            if not batch:
                watchers.wait(key, seen, self.thread.watch_poll_seconds)
                continue
            for patient in dict.fromkeys(m.patient_id for m in batch):
                self.thread.audit_access(
                    principal,
                    audit.SEARCH,
                    "Communication",
                    patient,
                    f"watch delivered {sum(m.patient_id == patient for m in batch)}; recipient",
                )
            for message in batch:
                delivered[message.seq] = now
                cursor = max(cursor, message.seq)
                yield message, paging.encode({"seq": cursor})
