"""A patient's Consents to disclosure (42 CFR 2.31): recorded by the patient or by program staff
with the signed form, read, listed and revoked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from iopcare.kit import audit, privacy
from iopcare.kit.auth import Principal
from iopcare.kit.copying import by_name
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    must_exist,
)
from iopcare.notes import fhir_map, once, store
from iopcare.notes.domain.text import has_forbidden_characters
from iopcare.notes.usecase import UseCase, audited

CONSENT_SCOPES = ("all", "sud")
#: How far a signature time may lie ahead of this server's clock (the signer's clock may be ahead).
SIGNATURE_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ConsentInput:
    """What a consent says, as asked for (validated by `record_consent`)."""

    recipient: str
    scope: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    recipient_type: str = "Organization"
    recipient_display: str = ""
    signed_at: datetime | None = None
    signed_document: str = ""


def _shown_to(principal: Principal, consent: store.StoredConsent) -> bool:
    """An outside system sees the consents naming it, and no other (a consent to another
    recipient is "not found")."""
    return principal.role not in privacy.OUTSIDE_ROLES or consent.recipient == principal.subject


def _signed_document(value: str) -> bool:
    """Where the signed form is: a DocumentReference of ours or an https URL."""
    if len(value) > 500 or has_forbidden_characters(value) or any(c.isspace() for c in value):
        return False
    if value.startswith("DocumentReference/"):
        ident = value.removeprefix("DocumentReference/")
        return 0 < len(ident) <= 64 and all(c.isalnum() or c in "-." for c in ident)
    return value.startswith("https://") and len(value) > len("https://")


def check_consent(given: ConsentInput, now: datetime) -> None:
    """What a consent must say to be recorded (INVALID_ARGUMENT with every field at fault)."""
    problems = FieldViolations()
    if not privacy.valid_client_id(given.recipient):
        problems.add(
            "recipient",
            "the recipient's client id (the subject of its tokens: letters, digits and "
            ".:_@/-, at most 200), not a display name",
        )
    if given.recipient_type not in privacy.RECIPIENT_TYPES:
        problems.add("recipient_type", f"one of {', '.join(privacy.RECIPIENT_TYPES)}")
    if len(given.recipient_display) > 200 or has_forbidden_characters(given.recipient_display):
        problems.add("recipient_display", "at most 200 characters of text")
    if given.scope not in CONSENT_SCOPES:
        problems.add("scope", f"one of {', '.join(CONSENT_SCOPES)}")
    if given.signed_document and not _signed_document(given.signed_document):
        problems.add("signed_document", "DocumentReference/{id} or an https URL of the signed form")
    if given.signed_at is not None and given.signed_at > now + SIGNATURE_CLOCK_SKEW:
        problems.add("signed_time", "not in the future")
    problems.raise_if_any("the consent is invalid")
    if given.period_start and given.period_end and given.period_end <= given.period_start:
        raise InvalidArgument(
            "the consent ends before it starts", [FieldViolation("end", "after start")]
        )


class Consents(UseCase):
    def _consent_basis(
        self, principal: Principal, action: str, resource: str, patient_id: str
    ) -> str:
        """The basis on which the caller acts on a patient's consents: the patient themselves (a
        token of role `patient` whose launch context is that patient), else the care-team rule."""
        if principal.role != "patient":
            return self.basis(principal, action, resource, patient_id)
        with self.refusals(principal, action, resource, patient_id):
            if principal.patient_context != patient_id:
                raise PermissionDenied(
                    "a patient's token acts on that patient's own record only",
                    reason="NOT_THIS_PATIENT",
                )
        return "patient"

    def record_consent(
        self, principal: Principal, request_id: str, patient_id: str, given: ConsentInput
    ) -> store.StoredConsent:
        """Records the patient's consent to disclose their records to an identified recipient
        (42 CFR 2.31: the patient's signed consent naming the recipient). Only the patient, or
        program staff attesting the form the patient signed, record one (privacy
        `may_record_consent`); the signed form stays in the paper or e-signature system, and the
        consent says when it was signed and where the form is."""
        now = datetime.now(UTC)
        check_consent(given, now)
        basis = self._consent_basis(principal, audit.CREATE, "Consent", patient_id)
        reason, attester = self._recorder(principal, patient_id, given, basis)
        record = fhir_map.ConsentRecord(
            patient_id=patient_id,
            **by_name(given, "recipient recipient_type recipient_display scope signed_document"),
            start=given.period_start,
            end=given.period_end,
            signed_at=given.signed_at or now,
            attester=attester,
            attested_at=now,
        )

        def _create(uow: UnitOfWork, consent_id: str) -> str:
            store.consents.insert_consent(
                uow.conn,
                store.StoredConsent(
                    id=consent_id,
                    patient_id=patient_id,
                    **by_name(given, "recipient scope period_start period_end"),
                    status="active",
                    version=1,
                    resource=fhir_map.consent_resource(consent_id, 1, "active", record),
                    recorded_at=now,
                ),
                principal.reference,
            )
            audited(
                uow,
                principal,
                audit.CREATE,
                f"Consent/{consent_id}",
                patient_id,
                f"{basis}; {reason}; recipient {given.recipient}",
            )
            return consent_id

        asked = once.Asked(
            principal, "RecordConsent", request_id, {"patient_id": patient_id, "consent": given}
        )
        consent_id, _ = once.create(self.db, asked, _create, patient_id)
        return self._consent(consent_id)

    def _recorder(
        self, principal: Principal, patient_id: str, given: ConsentInput, basis: str
    ) -> tuple[str, str]:
        """Whether the caller may record this consent (refused and audited if not): the reason
        (`patient` or `attested`) and who attests the patient's signature."""
        author = privacy.ConsentAuthor(
            principal.subject, principal.role, principal.patient_context, basis
        )
        decision = privacy.may_record_consent(author, patient_id, given.recipient)
        if not decision.allowed:
            self.audit_access(
                principal,
                audit.CREATE,
                "Consent",
                patient_id,
                f"{decision.reason}; recipient {given.recipient}",
                outcome=audit.DENIED,
            )
            raise PermissionDenied(
                "a consent is the patient's: recorded by the patient, or by program staff on the "
                "patient's care team with the signed form, never by its recipient or an outside "
                f"system ({decision.reason})",
                reason=decision.reason,
            )
        if decision.reason != "attested":
            return decision.reason, f"Patient/{patient_id}"
        # 42 CFR 2.31(a)(8): the patient's signature. Staff record a form the patient signed,
        # so they say when it was signed and where the signed form is kept.
        missing = FieldViolations()
        if given.signed_at is None:
            missing.add("signed_time", "when the patient signed the consent form")
        if not given.signed_document:
            missing.add("signed_document", "the signed form on file (DocumentReference/{id})")
        missing.raise_if_any("staff record a consent with the patient's signed form")
        return decision.reason, principal.reference

    def _consent(self, consent_id: str) -> store.StoredConsent:
        with self.db.read() as conn:
            return must_exist(store.load_consent(conn, consent_id), f"Consent/{consent_id}")

    def get_consent(self, principal: Principal, consent_id: str) -> store.StoredConsent:
        """One consent, for a caller who may see the patient's consents (audited)."""
        name = f"Consent/{consent_id}"
        with self.refusals(principal, audit.READ, name):
            current = self._consent(consent_id)
            if not _shown_to(principal, current):
                raise NotFound(f"{name} not found", resource=name)
        basis = self._consent_basis(principal, audit.READ, name, current.patient_id)
        self.audit_access(principal, audit.READ, name, current.patient_id, basis)
        return current

    def revoke_consent(
        self, principal: Principal, consent_id: str, request_id: str = ""
    ) -> store.StoredConsent:
        """Revokes a consent (42 CFR 2.31(a)(6): the patient may revoke at any time); nothing is
        disclosed under it afterwards, because every disclosure reads the consents in the
        transaction that decides it. A repeat of a request (same `request_id`) returns the
        consent without a second revocation."""
        name = f"Consent/{consent_id}"
        asked = once.Asked(principal, "RevokeConsent", request_id, {"id": consent_id})
        if once.earlier(self.db, asked) is not None:
            return self._consent(consent_id)
        with self.refusals(principal, audit.UPDATE, name):
            current = self._consent(consent_id)
        basis = self._consent_basis(principal, audit.UPDATE, name, current.patient_id)
        author = privacy.ConsentAuthor(
            principal.subject, principal.role, principal.patient_context, basis
        )
        decision = privacy.may_revoke_consent(author, current.patient_id, current.recipient)
        if not decision.allowed:
            with self.refusals(principal, audit.UPDATE, name, current.patient_id):
                raise PermissionDenied(
                    "an outside system revokes only a consent naming itself",
                    reason=decision.reason,
                )

        def _revoke(uow: UnitOfWork) -> None:
            now = datetime.now(UTC)
            resource = fhir_map.revised_consent(
                current.resource, current.version + 1, "inactive", now
            )
            # Only an active consent is revoked (and only once, if two revocations race);
            # revoking again changes nothing but is still an access to the patient's record,
            # audited like the first.
            done = store.consents.revoke(uow.conn, current, resource, now)
            audited(
                uow,
                principal,
                audit.UPDATE,
                name,
                current.patient_id,
                f"{'revoked' if done else 'already revoked'}; {basis}",
            )

        once.change(
            self.db, asked, consent_id, _revoke, current.patient_id, caller_audits_refusals=False
        )
        return self._consent(consent_id)

    def page(
        self, principal: Principal, patient_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[store.StoredConsent], str]:
        """A page of a patient's consents, oldest first, and the next page's token; an outside
        system sees only those naming it (whom else the patient lets see their records is none
        of its business: minimum necessary)."""
        only = principal.subject if principal.role in privacy.OUTSIDE_ROLES else None
        return self.listed(
            principal,
            "Consent",
            patient_id,
            page_size,
            page_token,
            lambda conn, limit, after: store.consents.consents_page(
                conn, patient_id, limit, after, only
            ),
            lambda c: (c.recorded_at, c.id),
            # A patient lists their own consents; everyone else by the care-team rule.
            basis=(
                (lambda: self._consent_basis(principal, audit.SEARCH, "Consent", patient_id))
                if principal.role == "patient"
                else None
            ),
        )
