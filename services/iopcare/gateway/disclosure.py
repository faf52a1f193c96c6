"""What may leave the program through the gateway (every caller of the gateway is outside it).

42 CFR Part 2: records of a substance-use-disorder program go to another provider only under the
patient's written Consent, and each disclosure carries the prohibition on redisclosure (42 CFR
2.31, 2.32). Psychotherapy notes are not shared at all without specific authorization (HIPAA,
45 CFR 164.508(a)(2)). Clinical notes are decided by the notes service: a system caller gets each
note through `DiscloseNote`, which checks the patient's Consents and adds the NORDSCLCD label and
the notice; the handler marks such a copy `released` and it passes here untouched. For everything
else the services offer no consent check, so the gateway applies the strict reading: a resource
labelled with one of these sensitivities leaves only for a system caller (an EHR) named by an
active Consent of the patient, under the same rule notes applies to notes
(`iopcare.kit.privacy.may_disclose`: never psychotherapy or V content; Part 2 and R
content with the consent, the NORDSCLCD label and the 42 CFR 2.32 notice); for everyone else it is
withheld from every response (read, vread, history, search, _include, $everything,
$handoff-summary), and the response says that something was withheld and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from iopcare.kit import privacy
from iopcare.notes.contract import disclosed

#: Sensitivity labels (HL7 v3 ActCode, as DS4P uses them) whose content needs consent to leave:
#: every one notes knows, subtypes included (ETHUD is as much 42 CFR Part 2 as SUD).
RESTRICTED = privacy.SENSITIVITY
#: Confidentiality codes (HL7 v3-Confidentiality) that restrict content on their own: R
#: (restricted) leaves only under the patient's consent, V (very restricted) never (program
#: policy, the same as notes' may_disclose for notes).
CONFIDENTIALITY_SYSTEM = privacy.CONFIDENTIALITY_SYSTEM
RESTRICTED_CONFIDENTIALITY = frozenset({"R", "V"})


def labels(resource: dict[str, Any]) -> set[str]:
    """The resource's security labels and those of its contained resources: a plan that holds a
    labelled Condition discloses it whatever the plan's own labels say. A confidentiality code
    counts only as a v3-Confidentiality code (an "R" of another system is not "restricted")."""
    found: set[str] = set()
    for label in resource.get("meta", {}).get("security", []):
        if not isinstance(label, dict):
            continue
        code = str(label.get("code"))
        if code in RESTRICTED_CONFIDENTIALITY and label.get("system") not in (
            None,
            CONFIDENTIALITY_SYSTEM,
        ):
            continue
        found.add(code)
    for contained in resource.get("contained", []):
        if isinstance(contained, dict):
            found |= labels(contained)
    return found


def withheld_reason(resource: dict[str, Any]) -> str | None:
    """Why a resource may not leave the program without a decision on consent (None: it may)."""
    sensitive = labels(resource) & (RESTRICTED | RESTRICTED_CONFIDENTIALITY)
    if not sensitive:
        return None
    return (
        f"labelled {', '.join(sorted(sensitive))}: leaves the program only for a system caller "
        "named by the patient's active Consent (42 CFR Part 2), never as a psychotherapy note "
        "or very restricted (V) record"
    )


def consent_facts(consent: Any) -> privacy.ConsentFacts:
    """A Consent as notes answers it (ListConsents), with the period of its provision."""
    period = json.loads(consent.fhir_json or "{}").get("provision", {}).get("period", {})

    def instant(value: Any) -> datetime | None:
        if not isinstance(value, str):
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    return privacy.ConsentFacts(
        consent.recipient,
        consent.status,
        instant(period.get("start")),
        instant(period.get("end")),
        consent.scope or "all",
    )


#: Part 2 labels notes' rules know by another name.
_AS_NOTES_LABEL = {"OPIOIDUD": "SUD", "ALCUD": "SUD"}


def release(
    raw_json: str, recipient: str, consents: Iterable[privacy.ConsentFacts], at: datetime
) -> str | None:
    """The copy of a labelled resource that may go to `recipient` under the patient's consents
    (with NORDSCLCD and the redisclosure notice where Part 2 requires them), or None."""
    resource = json.loads(raw_json)
    found = labels(resource)
    if found & RESTRICTED - {*privacy.SENSITIVITY, *_AS_NOTES_LABEL}:
        return None  # HIV, SDV: no disclosure rule here, so they stay in the program
    sensitivity = frozenset(_AS_NOTES_LABEL.get(code, code) for code in found) & (
        privacy.SENSITIVITY
    )
    confidentiality = next((c for c in ("V", "R") if c in found), "N")
    facts = privacy.NoteFacts(
        author="",
        author_role="",
        kind="record",
        status="signed",
        confidentiality=confidentiality,
        sensitivity=sensitivity,
    )
    decision = privacy.may_disclose(facts, recipient, consents, at)
    if not decision.allowed:
        return None
    # The copy notes would send of a note: its labels, NORDSCLCD and the notice added.
    return disclosed(raw_json, decision.add_labels, decision.notice)


def may_carry_labels(raw_json: str) -> bool:
    """A cheap pre-check on the stored bytes, so unlabelled reads skip parsing."""
    return '"security"' in raw_json
