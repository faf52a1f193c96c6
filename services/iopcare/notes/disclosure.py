"""Disclosure outside the program (42 CFR Part 2): a signed note for an outside system, to that
system itself and only under the patient's Consent where the rules ask for one (`kit.privacy`)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from iopcare.kit import audit, privacy
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database
from iopcare.kit.errors import NotFound, PermissionDenied
from iopcare.notes import fhir_map, store
from iopcare.notes.clinical import facts
from iopcare.notes.usecase import UseCase

#: Identities that may ask for a note "for disclosure": the FHIR gateway's service identity (and
#: administrators acting for it). Clinicians read notes; services disclose them.
DISCLOSING_ROLES = frozenset({"service", "system", "admin"})


def consent_facts(conn: Connection, patient_id: str) -> list[privacy.ConsentFacts]:
    """The patient's consents as the disclosure rules read them (read in the transaction that
    decides, so a revocation is never missed)."""
    return [
        privacy.ConsentFacts(c.recipient, c.status, c.period_start, c.period_end, c.scope)
        for c in store.consents_for(conn, patient_id)
    ]


def recipient_of(
    db: Database, principal: Principal, asked: str, resource: str, patient_id: str | None
) -> str:
    """The recipient of a disclosure: always the caller itself. The request's field, if
    set, may only repeat the caller's subject: a token naming another recipient would read
    what that recipient's consent releases (42 CFR 2.31, 2.33: disclosure only to the
    recipient the patient named)."""
    if asked and asked != principal.subject:
        with store.JOURNAL.refusals(db, principal, audit.READ, resource, patient_id):
            raise PermissionDenied(
                "the recipient of a disclosure is the caller itself; name no other",
                reason="RECIPIENT_NOT_CALLER",
            )
    return principal.subject


class Disclosure(UseCase):
    def disclose(self, principal: Principal, note_id: str, recipient: str) -> str:
        """A note for disclosure to the caller, outside the program (an outside EHR's token the
        FHIR gateway forwards; `recipient` may only repeat the caller's subject): the
        DocumentReference with its content, its labels and what the
        disclosure obliges (NORDSCLCD and the 42 CFR 2.32 notice for Part 2 records), or
        PERMISSION_DENIED (reason NO_ACTIVE_CONSENT, PSYCHOTHERAPY_NOTE, ...). Audited either
        way with the recipient."""
        name = f"DocumentReference/{note_id}"
        recipient = recipient_of(self.db, principal, recipient, name, None)
        with self.refusals(principal, audit.READ, name):
            if principal.role not in DISCLOSING_ROLES:
                raise PermissionDenied(
                    "disclosure outside the program is done by the gateway's service identity",
                    reason="NOT_A_DISCLOSING_SERVICE",
                )
            with self.db.read() as conn:
                note = store.load_note(conn, note_id)
                if note is None:
                    raise NotFound(f"{name} not found", resource=name)
                consents = consent_facts(conn, note.patient_id)
        decision = privacy.may_disclose(facts(note), recipient, consents, datetime.now(UTC))
        detail = f"disclose to {recipient}: {decision.reason}"
        if not decision.allowed:
            self.audit_access(
                principal, audit.READ, name, note.patient_id, detail, outcome=audit.DENIED
            )
            raise PermissionDenied(
                f"the note may not be disclosed to this recipient ({decision.reason})",
                reason=decision.reason,
            )
        self.audit_access(principal, audit.READ, name, note.patient_id, detail)
        return fhir_map.disclosed(note.resource, decision.add_labels, decision.notice)
