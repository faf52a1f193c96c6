"""What may leave the program through the gateway (every caller of the gateway is outside it).

42 CFR Part 2: records of a substance-use-disorder program go to another provider only under the
patient's written Consent, and each disclosure carries the prohibition on redisclosure (42 CFR
2.31, 2.32). Psychotherapy notes are not shared at all without specific authorization (HIPAA,
45 CFR 164.508(a)(2)). Clinical notes are decided by the notes service: a system caller gets each
note through `DiscloseNote`, which checks the patient's Consents and adds the NORDSCLCD label and
the notice; the handler marks such a copy `released` and it passes here untouched. For everything
else the services offer no consent check, so the gateway applies the strict reading: a resource
labelled with one of these sensitivities is withheld from every response (read, vread, history,
search, _include, $everything, $handoff-summary), and the response says that something was
withheld and why.
"""

from __future__ import annotations

from typing import Any

#: Sensitivity labels (HL7 v3 ActCode, as DS4P uses them) whose content needs consent to leave.
RESTRICTED = frozenset({"ETH", "SUD", "OPIOIDUD", "ALCUD", "PSY", "PSYTHPN", "HIV", "SDV"})

#: The notice 42 CFR 2.32 requires with each disclosure (for when consent can be checked).
REDISCLOSURE_NOTICE = (
    "This record which has been disclosed to you is protected by federal confidentiality rules "
    "(42 CFR part 2). These rules prohibit you from using or disclosing this record, or testimony "
    "that describes the information contained in this record, in any civil, criminal, "
    "administrative, or legislative proceedings by any Federal, State, or local authority, against "
    "the patient, unless authorized by the consent of the patient, except as provided at 42 CFR "
    "2.12(c)(5) or as authorized by a court in accordance with 42 CFR 2.64 or 2.65."
)


def labels(resource: dict[str, Any]) -> set[str]:
    """The resource's security labels and those of its contained resources: a plan that holds a
    labelled Condition discloses it whatever the plan's own labels say."""
    found = {str(s.get("code")) for s in resource.get("meta", {}).get("security", [])}
    for contained in resource.get("contained", []):
        if isinstance(contained, dict):
            found |= labels(contained)
    return found


def withheld_reason(resource: dict[str, Any]) -> str | None:
    """Why a resource may not leave the program (None: it may)."""
    sensitive = labels(resource) & RESTRICTED
    if not sensitive:
        return None
    return (
        f"labelled {', '.join(sorted(sensitive))}: disclosure needs the patient's consent "
        "(42 CFR Part 2, psychotherapy notes), which the gateway can check only for clinical notes "
        "disclosed to a system caller"
    )


def may_carry_labels(raw_json: str) -> bool:
    """A cheap pre-check on the stored bytes, so unlabelled reads skip parsing."""
    return '"security"' in raw_json
