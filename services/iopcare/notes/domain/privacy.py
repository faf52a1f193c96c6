"""Who may read a clinical note, and when one may leave the program: pure rules, no I/O.

Team membership (`iopcare.kit.access.access_basis`) decides whether a caller may see a patient at
all; the rules here narrow it further, per note, by the note's security labels (`meta.security`),
its discipline and its author. Every rule names its source. The service layer turns a refusal into
PERMISSION_DENIED (or NOT_FOUND in searches: a refused note is simply not a hit) and audits it.

Labels (HL7 v3, http://terminology.hl7.org/CodeSystem/v3-Confidentiality and v3-ActCode):
- confidentiality N (normal), R (restricted), V (very restricted);
- sensitivity PSYTHPN (psychotherapy note), PSY (psychiatry disorder information), ETH (substance
  abuse information) and SUD (substance use disorder information; 42 CFR Part 2 records).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

CONFIDENTIALITY = ("N", "R", "V")
#: Psychotherapy notes (HIPAA 45 CFR 164.501): "psychotherapy note information sensitivity".
PSYCHOTHERAPY = "PSYTHPN"
#: Psychiatric information: restricted to clinicians treating the patient.
PSYCHIATRIC = "PSY"
#: Substance use: ETH ("substance abuse information sensitivity") and SUD; either makes a note a
#: 42 CFR Part 2 record.
SUD_LABELS = frozenset({"ETH", "SUD"})
SENSITIVITY = frozenset({PSYCHOTHERAPY, PSYCHIATRIC, *SUD_LABELS})
#: Obligation carried by every disclosed Part 2 record: "no redisclosure without consent
#: directive" (v3-ActCode NORDSCLCD), 42 CFR 2.32.
NO_REDISCLOSURE = "NORDSCLCD"
#: The abbreviated notice 42 CFR 2.32(a)(2) allows to accompany a disclosure.
REDISCLOSURE_NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."

#: Roles whose access to notes is narrowed to their own discipline (HIPAA minimum necessary,
#: 45 CFR 164.502(b) and 164.514(d)(2): a workforce member sees what their job needs).
NARROWED_ROLES = frozenset({"dietitian", "physician", "nurse"})
#: The discipline a role writes in; a narrowed role reads notes of its own discipline.
DISCIPLINE = {
    "psychiatrist": "psychiatry",
    "therapist": "therapy",
    "psychologist": "therapy",
    "group-facilitator": "therapy",
    "dietitian": "nutrition",
    "physician": "medical",
    "nurse": "medical",
    "case-manager": "case-management",
}
#: Note kinds every team member needs whatever their discipline: where the patient comes from and
#: where they go next.
SHARED_KINDS = frozenset({"intake", "discharge"})
#: Bases (iopcare.kit.access) of identities that are not clinicians treating the patient.
NON_TREATING_BASES = frozenset({"role:admin", "role:system", "role:service"})


@dataclass(frozen=True)
class NoteFacts:
    """What the rules need to know about one note."""

    author: str
    author_role: str
    kind: str
    status: str  # draft, signed, entered-in-error
    confidentiality: str = "N"
    sensitivity: frozenset[str] = frozenset()
    shared_with: frozenset[str] = frozenset()

    @property
    def is_psychotherapy(self) -> bool:
        return PSYCHOTHERAPY in self.sensitivity

    @property
    def is_part2(self) -> bool:
        return bool(self.sensitivity & SUD_LABELS)


@dataclass(frozen=True)
class Viewer:
    """Who asks: their reference, their role and the basis on which they see the patient."""

    reference: str
    role: str
    basis: str  # care-team, role:admin, role:system, role:service, break-glass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # an UPPER_SNAKE reason (refusal) or the basis it was allowed on
    #: Break-glass access to labelled content: allowed, but flagged for review.
    flagged: bool = False


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def may_read(viewer: Viewer, note: NoteFacts) -> Decision:
    """Whether `viewer`, who already passed the care-team check, may read `note`."""
    is_author = viewer.reference == note.author
    if note.status == "draft":
        # A draft is not yet part of the record: only its author works on it.
        return Decision(True, "author") if is_author else _deny("DRAFT_OF_ANOTHER_AUTHOR")
    if note.is_psychotherapy:
        # HIPAA 45 CFR 164.508(a)(2): psychotherapy notes need the patient's authorization for
        # almost every use; the exception is the originator's own use for treatment
        # (164.508(a)(2)(i)(A)). So: the author, and whoever the author explicitly shared the note
        # with. Neither team membership, nor an administrative role, nor break-glass opens them.
        if is_author:
            return Decision(True, "author")
        if viewer.reference in note.shared_with and viewer.basis == "care-team":
            return Decision(True, "shared-by-author")
        return _deny("PSYCHOTHERAPY_NOTE")
    if note.confidentiality == "V":
        # HL7 v3 Confidentiality V (very restricted): only the author and those they named.
        if is_author or (viewer.reference in note.shared_with and viewer.basis == "care-team"):
            return Decision(True, "author" if is_author else "shared-by-author")
        return _deny("VERY_RESTRICTED")
    labelled = note.is_part2 or PSYCHIATRIC in note.sensitivity or note.confidentiality == "R"
    if labelled and viewer.basis in NON_TREATING_BASES:
        # 42 CFR 2.12(c)(3): within a Part 2 program, records go only to personnel who need them
        # to treat the patient; HL7 R (restricted) and PSY likewise limit sensitive information to
        # the clinicians treating the patient. Administrators and other services get references
        # and labels (events, summaries), never the content.
        return _deny("LABELLED_CONTENT")
    flagged = viewer.basis == "break-glass"
    if flagged and note.is_part2:
        # 42 CFR 2.51: Part 2 records may be disclosed to medical personnel to meet a bona fide
        # medical emergency; allowed, flagged and audited for review.
        return Decision(True, "break-glass", flagged=True)
    if viewer.role in NARROWED_ROLES and not is_author:
        # Minimum necessary (45 CFR 164.502(b), 164.514(d)): a dietitian or physician reads the
        # team thread and their own discipline's notes, plus intake and discharge summaries.
        own = DISCIPLINE.get(viewer.role) == DISCIPLINE.get(note.author_role)
        if not own and note.kind not in SHARED_KINDS:
            return _deny("OTHER_DISCIPLINE")
    return Decision(True, viewer.basis, flagged=flagged)


@dataclass(frozen=True)
class ConsentFacts:
    """One Consent of the patient to disclose records to a recipient."""

    recipient: str
    status: str  # active, inactive (revoked)
    start: datetime | None = None
    end: datetime | None = None
    #: Which records: "sud" (42 CFR Part 2 records) or "all".
    scope: str = "all"

    def covers(self, recipient: str, part2: bool, at: datetime) -> bool:
        if self.status != "active" or self.recipient != recipient:
            return False
        if self.start is not None and at < self.start:
            return False
        if self.end is not None and at >= self.end:
            return False
        return self.scope == "all" or (self.scope == "sud" and part2)


@dataclass(frozen=True)
class Disclosure:
    """The answer to a request to send a note outside the program."""

    allowed: bool
    reason: str
    #: Labels the disclosed copy must carry in addition to its own (e.g. NORDSCLCD).
    add_labels: tuple[str, ...] = ()
    #: Text that must travel with the disclosed copy (42 CFR 2.32).
    notice: str | None = None
    consent_needed: bool = field(default=False)


def may_disclose(
    note: NoteFacts, recipient: str, consents: Iterable[ConsentFacts], at: datetime
) -> Disclosure:
    """Whether `note` may leave the program for `recipient` (an outside EHR, a referral)."""
    if note.status != "signed":
        # Drafts and retracted notes are not part of the disclosable record.
        return Disclosure(False, "NOT_SIGNED")
    if note.is_psychotherapy:
        # 45 CFR 164.508(a)(2): disclosing psychotherapy notes needs an authorization specific
        # to them; a general consent is not one. Never leaves through this path.
        return Disclosure(False, "PSYCHOTHERAPY_NOTE")
    if note.confidentiality == "V":
        return Disclosure(False, "VERY_RESTRICTED")
    covered = any(c.covers(recipient, note.is_part2, at) for c in consents)
    if note.is_part2:
        # 42 CFR 2.31 and 2.33: a Part 2 record is disclosed only with the patient's written
        # consent naming the recipient, active at the time; 2.32: each disclosure carries the
        # notice prohibiting redisclosure (and the NORDSCLCD obligation label for machines).
        if not covered:
            return Disclosure(False, "NO_ACTIVE_CONSENT", consent_needed=True)
        return Disclosure(True, "consent", (NO_REDISCLOSURE,), REDISCLOSURE_NOTICE)
    if note.confidentiality == "R" or PSYCHIATRIC in note.sensitivity:
        # Restricted information leaves only with the patient's consent (program policy, stricter
        # than HIPAA's treatment exception, 45 CFR 164.506(c)).
        if not covered:
            return Disclosure(False, "NO_ACTIVE_CONSENT", consent_needed=True)
        return Disclosure(True, "consent")
    # Normal information may go to another provider for treatment (45 CFR 164.506(c)(2)).
    return Disclosure(True, "consent" if covered else "treatment")


def check_labels(confidentiality: str, sensitivity: Iterable[str]) -> list[str]:
    """Problems with the labels a client asked for (empty when they are valid)."""
    problems = []
    if confidentiality not in CONFIDENTIALITY:
        problems.append(f"confidentiality must be one of {', '.join(CONFIDENTIALITY)}")
    unknown = sorted(set(sensitivity) - SENSITIVITY)
    if unknown:
        problems.append(f"unknown sensitivity labels {unknown}; known: {sorted(SENSITIVITY)}")
    return problems


def effective_confidentiality(confidentiality: str, sensitivity: Iterable[str]) -> str:
    """Sensitive content is at least R (HL7 healthcare privacy guidance: sensitive categories are
    restricted); a client can raise confidentiality but never lower it below what labels imply."""
    if confidentiality == "V":
        return "V"
    return "R" if set(sensitivity) & SENSITIVITY else confidentiality or "N"
