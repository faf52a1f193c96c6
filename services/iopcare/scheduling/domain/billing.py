"""Billing codes of an attended session (plain Python, no I/O): the code a US intensive
outpatient program puts on each Encounter (docs/scheduling.md, "Encounters for billing";
ADR 0029).

- The IOP day: HCPCS **S9480** "Intensive outpatient psychiatric services, per diem" for a
  psychiatric program, **H0015** "Alcohol and/or drug services; intensive outpatient (treatment
  program that operates at least 3 hours/day and at least 3 days/week ...)" for a substance use
  disorder program (CMS HCPCS Level II code set). The program's group sessions are the IOP day:
  an attended group session carries the per diem code first and CPT 90853 beside it (the group
  therapy the per diem pays for). A per diem is one unit per patient and day, however many groups
  that day (`day_units`).
- CPT (AMA): **90853** group psychotherapy (other than of a multiple-family group); **90832**
  psychotherapy 30 minutes (16-37 minutes), **90834** 45 minutes (38-52), **90837** 60 minutes
  (53 or more); **90847** family psychotherapy (conjoint psychotherapy) with patient present;
  E/M office visit of an established patient by total time on the day (2021 rules): **99213**
  (20 minutes or more), **99214** (30 minutes or more), for the psychiatrist's medication
  management.
- A session that fits none (an individual therapy under 16 minutes, a medication visit under 20,
  an unknown session type) gets no billing code: its Encounter is kept, the export shows it with
  an empty code so billing staff see it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HCPCS_SYSTEM = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"

PSYCHIATRIC_PER_DIEM = "S9480"
SUD_PER_DIEM = "H0015"
GROUP_THERAPY = "90853"
FAMILY_WITH_PATIENT = "90847"

#: Individual psychotherapy by face-to-face minutes (CPT time rule: a unit of time is attained
#: when the midpoint is passed): (at least, code).
PSYCHOTHERAPY_BY_MINUTES = ((53, "90837"), (38, "90834"), (16, "90832"))
#: E/M office or other outpatient visit, established patient, by total time (2021):
#: (at least, code).
EM_BY_MINUTES = ((30, "99214"), (20, "99213"))

DISPLAY = {
    PSYCHIATRIC_PER_DIEM: "Intensive outpatient psychiatric services, per diem",
    SUD_PER_DIEM: "Alcohol and/or drug services; intensive outpatient",
    GROUP_THERAPY: "Group psychotherapy",
    FAMILY_WITH_PATIENT: "Family psychotherapy (conjoint psychotherapy) with patient present",
    "90832": "Psychotherapy, 30 minutes with patient",
    "90834": "Psychotherapy, 45 minutes with patient",
    "90837": "Psychotherapy, 60 minutes with patient",
    "99213": "Office or other outpatient visit, established patient, 20 minutes",
    "99214": "Office or other outpatient visit, established patient, 30 minutes",
}

#: Session types (the program's own codes, Appointment.serviceType) and what they are for billing.
GROUP_TYPES = frozenset({"group-therapy", "iop-group", "psychoeducation-group"})
INDIVIDUAL_TYPES = frozenset({"individual-therapy"})
FAMILY_TYPES = frozenset({"family-therapy"})
MEDICATION_TYPES = frozenset({"medication-management"})
#: The rendering practitioner's role that makes an otherwise untyped individual session a
#: medication visit.
PSYCHIATRIST = "psychiatrist"


@dataclass(frozen=True)
class Session:
    """What billing needs to know of one attended session."""

    #: individual or group (the appointment's kind).
    kind: str
    #: The program's session type code ("" if the session has none).
    service_type: str
    #: Scheduled length in minutes.
    minutes: int
    #: A substance use disorder program's session (its plan carries a 42 CFR Part 2 label).
    substance_use: bool = False
    #: Whether a family member attended with the patient.
    family_present: bool = False
    #: The rendering practitioner's role (their calendar's), "" when unknown.
    rendering_role: str = ""


@dataclass(frozen=True)
class BillingCode:
    system: str
    code: str

    @property
    def display(self) -> str:
        return DISPLAY.get(self.code, self.code)

    @property
    def per_diem(self) -> bool:
        return self.code in {PSYCHIATRIC_PER_DIEM, SUD_PER_DIEM}


def _by_minutes(minutes: int, table: Sequence[tuple[int, str]]) -> str | None:
    for least, code in table:
        if minutes >= least:
            return code
    return None


def billing_codes(session: Session) -> list[BillingCode]:
    """The session's billing codes, the one billed first (empty: nothing billable)."""
    kind = session.service_type
    if session.kind == "group" or kind in GROUP_TYPES:
        per_diem = SUD_PER_DIEM if session.substance_use else PSYCHIATRIC_PER_DIEM
        return [BillingCode(HCPCS_SYSTEM, per_diem), BillingCode(CPT_SYSTEM, GROUP_THERAPY)]
    if kind in FAMILY_TYPES:
        # 90847 is family therapy with the patient present; without family there it is the
        # patient's own psychotherapy session.
        if session.family_present:
            return [BillingCode(CPT_SYSTEM, FAMILY_WITH_PATIENT)]
        kind = "individual-therapy"
    if kind in MEDICATION_TYPES or (
        kind not in INDIVIDUAL_TYPES and session.rendering_role == PSYCHIATRIST
    ):
        em = _by_minutes(session.minutes, EM_BY_MINUTES)
        return [BillingCode(CPT_SYSTEM, em)] if em else []
    if kind in INDIVIDUAL_TYPES:
        code = _by_minutes(session.minutes, PSYCHOTHERAPY_BY_MINUTES)
        return [BillingCode(CPT_SYSTEM, code)] if code else []
    return []


@dataclass(frozen=True)
class Line:
    """One Encounter as a billing line: who, which day, which code."""

    encounter_id: str
    patient_id: str
    day: str
    code: str


def day_units(lines: Iterable[Line]) -> dict[str, int]:
    """Units per Encounter: 1 for a session code; a per diem is 1 for the patient's first
    Encounter of the day carrying it and 0 for their other sessions that day (in the order
    given)."""
    billed: set[tuple[str, str, str]] = set()
    units: dict[str, int] = {}
    for line in lines:
        if not line.code:
            units[line.encounter_id] = 0
        elif line.code in {PSYCHIATRIC_PER_DIEM, SUD_PER_DIEM}:
            key = (line.patient_id, line.day, line.code)
            units[line.encounter_id] = 0 if key in billed else 1
            billed.add(key)
        else:
            units[line.encounter_id] = 1
    return units
