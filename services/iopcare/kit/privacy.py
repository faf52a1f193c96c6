"""Who may read a clinical note, and when one may leave the program: pure rules, no I/O.

Shared policy: notes applies it to its notes and consents, careplan to the signed notes its
patient view lists, the gateway to every labelled resource it releases (docs/architecture.md,
"Service boundaries and contracts").

Team membership (`iopcare.kit.access.access_basis`) decides whether a caller may see a patient at
all; the rules here narrow it further, per note, by the note's security labels (`meta.security`),
its discipline and its author. Every rule names its source. The service layer turns a refusal into
PERMISSION_DENIED (or NOT_FOUND in searches: a refused note is simply not a hit) and audits it.

Labels (HL7 v3, http://terminology.hl7.org/CodeSystem/v3-Confidentiality and v3-ActCode):
- confidentiality U, L, M, N (normal), R (restricted), V (very restricted);
- sensitivity: every code of v3-ActCode's _InformationSensitivityPolicy a program may use (ETH,
  SUD and its subtypes ETHUD and OPIOIDUD, PSY, PSYTHPN, MH, HIV, SDV, SEX, STD, ...). A label is
  kept as written, never dropped or replaced, and a subtype counts as its parent class for the
  rules (OPIOIDUD is SUD, so a 42 CFR Part 2 record).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

#: v3-Confidentiality, least to most restricted (the order `inherited_labels` raises along).
CONFIDENTIALITY = ("U", "L", "M", "N", "R", "V")
#: Psychotherapy notes (HIPAA 45 CFR 164.501): "psychotherapy note information sensitivity".
PSYCHOTHERAPY = "PSYTHPN"
#: Psychiatric information: restricted to clinicians treating the patient.
PSYCHIATRIC = "PSY"
#: Substance use: ETH ("substance abuse information sensitivity") and SUD; either, or a subtype of
#: SUD, makes a note a 42 CFR Part 2 record.
SUD_LABELS = frozenset({"ETH", "SUD"})
#: The sensitivity codes of v3-ActCode (_InformationSensitivityPolicy: its act, entity and role
#: branches), each with its parent class where the code system nests it. A code outside this
#: list is refused, never dropped. ALCUD is not an HL7 code but some EHRs send it for alcohol use
#: disorder (HL7's ETHUD); it is kept as sent and ranks as SUD.
SENSITIVITY_PARENT: dict[str, str | None] = {
    # _ActInformationSensitivityPolicy
    "ETH": None,
    "GDIS": None,
    "HIV": None,
    "MST": None,
    "PREGNANT": None,
    "SCA": None,
    "SDV": None,
    "SEX": None,
    "SPI": None,
    "BH": None,
    "COGN": "BH",
    "DVD": "BH",
    "EMOTDIS": "BH",
    "MH": "BH",
    "PSY": "MH",
    "PSYTHPN": "PSY",
    "SUD": "BH",
    "ETHUD": "SUD",
    "OPIOIDUD": "SUD",
    "ALCUD": "SUD",
    "STD": None,
    "TBOO": None,
    "VIO": None,
    "IDS": None,
    "SICKLE": None,
    # _EntitySensitivityPolicyType
    "DEMO": None,
    "DOB": None,
    "GENDER": None,
    "LIVARG": None,
    "MARST": None,
    "PATLOC": None,
    "RACE": None,
    "REL": None,
    # _RoleInformationSensitivityPolicy
    "B": None,
    "EMPL": None,
    "LOCIS": None,
    "SSP": None,
    "ADOL": None,
    "CEL": None,
    "VIP": None,
    "DIA": None,
    "DRGIS": None,
    "EMP": None,
    "PDS": None,
    "PHY": None,
    "PRS": None,
}
SENSITIVITY = frozenset(SENSITIVITY_PARENT)
#: A note's sensitivity labels are stored space-separated in 100 characters.
MAX_SENSITIVITY_LABELS = 10


def implied(sensitivity: Iterable[str]) -> frozenset[str]:
    """The labels and every class they belong to (OPIOIDUD -> SUD -> BH): the rules test classes,
    so a specific label is never weaker than its parent."""
    found: set[str] = set()
    for code in sensitivity:
        current: str | None = code
        while current is not None and current not in found:
            found.add(current)
            current = SENSITIVITY_PARENT.get(current)
    return frozenset(found)


def is_part2(sensitivity: Iterable[str]) -> bool:
    """42 CFR Part 2 records: substance use disorder information, whatever subtype names it."""
    return bool(implied(sensitivity) & SUD_LABELS)


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
#: The program administrator's basis: reads no clinical note (see may_read).
ADMIN_BASIS = "role:admin"


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
        return is_part2(self.sensitivity)


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
    labelled = bool(note.sensitivity) or note.confidentiality == "R"
    if labelled and viewer.basis in NON_TREATING_BASES:
        # 42 CFR 2.12(c)(3): within a Part 2 program, records go only to personnel who need them
        # to treat the patient; HL7 R (restricted) and PSY likewise limit sensitive information to
        # the clinicians treating the patient. Administrators and other services get references
        # and labels (events, summaries), never the content.
        return _deny("LABELLED_CONTENT")
    if viewer.basis == ADMIN_BASIS or viewer.role == "admin":  # on a team or not
        # Minimum necessary (45 CFR 164.502(b), 164.514(d)(2)): the program's administrator
        # assigns case managers and enrols teams; a clinical note's narrative is not part of that
        # job, labelled or not. (Plans, goals and the thread stay readable: they run the program.)
        return _deny("NOT_TREATING")
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


#: Sensitivity classes a patient's consent releases (with the rules of may_disclose): Part 2 records
#: (42 CFR 2.31), mental and behavioral health. Psychotherapy notes never leave; every other class
#: stays in the program (see may_disclose).
_CONSENT_RELEASES = frozenset({*SUD_LABELS, "ETHUD", "OPIOIDUD", "ALCUD", PSYCHIATRIC, "MH", "BH"})


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
    if implied(note.sensitivity) - _CONSENT_RELEASES:
        # HIV, sexual and domestic violence, sexual health and the like: state laws set their own
        # rules for each, which this service does not hold, so they stay in the program.
        return Disclosure(False, "NO_DISCLOSURE_RULE")
    if note.confidentiality == "R" or note.sensitivity:
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
    labels = set(sensitivity)
    unknown = sorted(labels - SENSITIVITY)
    if unknown:
        problems.append(
            f"unknown sensitivity labels {[u[:20] for u in unknown[:5]]}: v3-ActCode "
            "information sensitivity codes (e.g. SUD, OPIOIDUD, ETH, PSY, PSYTHPN, MH, HIV)"
        )
    if len(labels) > MAX_SENSITIVITY_LABELS:
        problems.append(f"at most {MAX_SENSITIVITY_LABELS} sensitivity labels")
    return problems


def effective_confidentiality(confidentiality: str, sensitivity: Iterable[str]) -> str:
    """Sensitive content is at least R (HL7 healthcare privacy guidance: sensitive categories are
    restricted); a client can raise confidentiality but never lower it below what labels imply."""
    if confidentiality == "V":
        return "V"
    return "R" if set(sensitivity) & SENSITIVITY else confidentiality or "N"


# Consents ---------------------------------------------------------------------------------------

#: Program staff who may attest a consent form the patient signed, when on the patient's active
#: care team: the clinicians and case managers who take the patient's consent in the program.
ATTESTING_ROLES = frozenset(
    {
        "psychiatrist",
        "therapist",
        "psychologist",
        "group-facilitator",
        "case-manager",
        "physician",
        "nurse",
        "dietitian",
    }
)
#: Outside systems: never the author of a patient's consent, whoever they name.
OUTSIDE_ROLES = frozenset({"system"})
#: A recipient is identified by its client id (the subject of its tokens): what the disclosure
#: rules compare with the caller. A display name ("St Mary's") identifies nobody.
RECIPIENT_TYPES = ("Organization", "Device")


def valid_client_id(value: str) -> bool:
    """A client id: 1 to 200 of letters, digits and `.:_@/-`, starting with a letter or digit."""
    return (
        0 < len(value) <= 200
        and value[0].isascii()
        and value[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in ".:_@/-") for c in value)
    )


@dataclass(frozen=True)
class ConsentAuthor:
    """Who asks to record (or revoke) a consent."""

    subject: str  # the token's subject (an outside system's client id)
    role: str
    #: The token's launch context (a patient's own token names them).
    patient: str | None
    #: The basis of their access to the patient (iopcare.kit.access), or "" when none was checked.
    basis: str


def may_record_consent(author: ConsentAuthor, patient_id: str, recipient: str) -> Decision:
    """Whether `author` may record the patient's consent naming `recipient`.

    42 CFR 2.31(a): a consent is the patient's written act, signed by the patient (2.31(a)(8)),
    naming the recipient. So it comes from the patient themselves, or from program staff on the
    patient's team who attest the form the patient signed (the caller then must say when it was
    signed and where the form is). Never from the recipient, which would grant itself access, and
    never from an outside system, service or administrator, who are not the patient and hold no
    signed form of the program's."""
    if recipient == author.subject:
        return _deny("RECIPIENT_RECORDS_OWN_CONSENT")
    if author.role == "patient":
        if author.patient == patient_id:
            return Decision(True, "patient")
        return _deny("NOT_THIS_PATIENT")
    if author.basis == "care-team" and author.role in ATTESTING_ROLES:
        return Decision(True, "attested")
    return _deny("CONSENT_NOT_FROM_PATIENT")


def may_revoke_consent(author: ConsentAuthor, patient_id: str, recipient: str) -> Decision:
    """Whether `author` may revoke a consent. 42 CFR 2.31(a)(6): the patient may revoke at any
    time, and the program records it; the recipient may renounce what it was given. An outside
    system may not revoke a consent made to another (it would deny the patient's choice)."""
    if author.role == "patient":
        if author.patient == patient_id:
            return Decision(True, "patient")
        return _deny("NOT_THIS_PATIENT")
    if recipient == author.subject:
        return Decision(True, "recipient")
    if author.role in OUTSIDE_ROLES:
        return _deny("NOT_THE_RECIPIENT")
    return Decision(True, author.basis)
