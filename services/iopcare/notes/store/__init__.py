"""The notes service's tables and the queries on them, one module per aggregate:

- `schema`: the metadata, the kit's tables (outbox, inbox, request log, audit log), the care-team
  projection and `JOURNAL`, the write path every change goes through;
- `messages`: the team thread (messages, read receipts, the per-thread lock);
- `drafts`: message drafts;
- `flags`: Flags and the crisis workflow of crisis flags;
- `notes`: clinical notes, their signatures and full-text index;
- `consents`: a patient's Consents to disclosure;
- `safety_plans`: safety plans and the reviews a crisis makes due.

Everything is re-exported here, so a caller reads `store.<name>` whichever module defines it
(and the migrations see every table through `store.metadata`).
"""

from __future__ import annotations

from iopcare.notes.store import consents, drafts, flags, messages, notes, safety_plans
from iopcare.notes.store.consents import (
    StoredConsent,
    consent,
    consents_for,
    load_consent,
)
from iopcare.notes.store.drafts import StoredDraft, load_draft, message_draft
from iopcare.notes.store.flags import crisis_alert
from iopcare.notes.store.flags import flags as flag_tables
from iopcare.notes.store.messages import (
    StoredMessage,
    add_receipt,
    communication,
    insert_message,
    last_seq,
    load_message,
    lock_thread,
    message_for_event,
    message_receipt,
    receipts,
    thread,
)
from iopcare.notes.store.notes import (
    FTS_CONFIG,
    SQLITE_FTS,
    NoteQuery,
    StoredNote,
    insert_note,
    insert_provenance,
    load_note,
    note,
    note_provenance,
    notes_of_group,
    provenance_for,
    related_notes,
    search_notes,
    search_text,
    update_note,
)
from iopcare.notes.store.schema import (
    JOURNAL,
    audit_log,
    care_team_member,
    care_team_seen,
    inbox,
    metadata,
    outbox,
    request_log,
)

__all__ = [
    "FTS_CONFIG",
    "JOURNAL",
    "SQLITE_FTS",
    "NoteQuery",
    "StoredConsent",
    "StoredDraft",
    "StoredMessage",
    "StoredNote",
    "add_receipt",
    "audit_log",
    "care_team_member",
    "care_team_seen",
    "communication",
    "consent",
    "consents",
    "consents_for",
    "crisis_alert",
    "drafts",
    "flag_tables",
    "flags",
    "inbox",
    "insert_message",
    "insert_note",
    "insert_provenance",
    "last_seq",
    "load_consent",
    "load_draft",
    "load_message",
    "load_note",
    "lock_thread",
    "message_draft",
    "message_for_event",
    "message_receipt",
    "messages",
    "metadata",
    "note",
    "note_provenance",
    "notes",
    "notes_of_group",
    "outbox",
    "provenance_for",
    "receipts",
    "related_notes",
    "request_log",
    "safety_plans",
    "search_notes",
    "search_text",
    "thread",
    "update_note",
]
