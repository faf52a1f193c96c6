"""Encounters for billing (issue 14, part 5; ADR 0029): every attended session becomes a FHIR
Encounter, one per patient, written in the transaction that records the attendance. Recording
the same attendance again finds the Encounter it made (one per patient and session); a later
status of the session (arrived, then fulfilled; family members who came) updates it. A no-show
makes none. The Encounter keeps the session's security labels (a Part 2 plan's sessions are
Part 2 records), so everything that withholds labelled records withholds it too."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from iopcare.kit import fhir, labels, privacy
from iopcare.kit.db import UnitOfWork
from iopcare.scheduling import codes, store
from iopcare.scheduling.domain.billing import Session, billing_codes
from iopcare.scheduling.domain.intensity import ATTENDED

ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: Encounter.status for each attended appointment status (FHIR encounter-status).
ENCOUNTER_STATUS = {"arrived": "arrived", "checked-in": "arrived", "fulfilled": "finished"}


def _code_of(concept: dict[str, Any] | None) -> str:
    for coding in (concept or {}).get("coding", []):
        if coding.get("system") == codes.SERVICE_TYPE_SYSTEM and coding.get("code"):
            return str(coding["code"])
    return ""


def _episodes(uow: UnitOfWork, plan_id: str | None) -> list[str]:
    """The stays (EpisodeOfCare references) of the plan the session carries out, when known."""
    if not plan_id:
        return []
    stored = store.encounters.plan_resource(uow.conn, plan_id)
    if stored is None:
        return []
    plan = json.loads(stored)
    return [
        ref
        for info in plan.get("supportingInfo", [])
        if (ref := info.get("reference", "")).startswith("EpisodeOfCare/")
    ]


def _attended_family(data: dict[str, Any]) -> list[str]:
    return [
        p["actor"]["reference"]
        for p in data.get("participant", [])
        if p.get("actor", {}).get("reference", "").startswith("RelatedPerson/")
        and any(
            e.get("url") == codes.ATTENDANCE_EXTENSION and e.get("valueCode") in ATTENDED
            for e in p.get("extension", [])
        )
    ]


def encounter_data(
    session: store.StoredAppointment,
    patient_id: str,
    status: str,
    *,
    rendering_role: str,
    episodes: list[str],
) -> dict[str, Any]:
    """The Encounter of `patient_id`'s attendance (`status`) in `session`, without its id and
    meta (plain data; the billing code comes from the domain's rules)."""
    data: dict[str, Any] = json.loads(session.resource)
    service_type = (data.get("serviceType") or [None])[0]
    practitioners = [
        p["actor"]["reference"]
        for p in data.get("participant", [])
        if p.get("actor", {}).get("reference", "").split("/")[0]
        in {"Practitioner", "PractitionerRole"}
    ]
    family = _attended_family(data)
    sensitivity = [str(s.get("code", "")) for s in labels.security_of(data)]
    found = billing_codes(
        Session(
            kind=session.kind,
            service_type=_code_of(service_type),
            minutes=int((session.end - session.start).total_seconds() // 60),
            substance_use=privacy.is_part2(sensitivity),
            family_present=bool(family),
            rendering_role=rendering_role,
        )
    )
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": ENCOUNTER_STATUS[status],
        "class": {"system": ACT_CODE_SYSTEM, "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "appointment": [{"reference": f"Appointment/{session.id}"}],
        "period": {"start": fhir.instant(session.start), "end": fhir.instant(session.end)},
        "participant": [
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": codes.PARTICIPATION_SYSTEM,
                                "code": "PPRF" if index == 0 else "SPRF",
                            }
                        ]
                    }
                ],
                "individual": {"reference": ref},
            }
            for index, ref in enumerate(practitioners)
        ]
        + [
            {
                "type": [{"coding": [{"system": codes.PARTICIPATION_SYSTEM, "code": "PART"}]}],
                "individual": {"reference": ref},
            }
            for ref in family
        ],
    }
    if found:
        encounter["type"] = [
            {"coding": [{"system": c.system, "code": c.code, "display": c.display}]} for c in found
        ]
    if service_type:
        encounter["serviceType"] = service_type
    if episodes:
        encounter["episodeOfCare"] = [{"reference": ref} for ref in episodes]
    if not encounter["participant"]:
        del encounter["participant"]
    security = labels.security_of(data)
    if security:
        encounter["meta"] = {"security": security}
    return encounter


def record_encounter(
    uow: UnitOfWork, session: store.StoredAppointment, patient_id: str, status: str, now: datetime
) -> store.encounters.StoredEncounter | None:
    """Creates or updates the patient's Encounter of an attended session in `uow` (the
    attendance's transaction); a status that is not attendance makes none."""
    if status not in ATTENDED or not patient_id:
        return None
    data = json.loads(session.resource)
    first = next(
        (
            ref
            for p in data.get("participant", [])
            if (ref := p.get("actor", {}).get("reference", "")).startswith("Practitioner/")
        ),
        "",
    )
    calendar = store.schedule_of(uow.conn, first) if first else None
    wanted = encounter_data(
        session,
        patient_id,
        status,
        rendering_role=(calendar.role or "") if calendar is not None else "",
        episodes=_episodes(uow, session.care_plan_id),
    )
    current = store.encounters.encounter_of(uow.conn, session.id, patient_id)
    if current is not None:
        before = json.loads(current.resource)
        # Compared as stored (the model's own serialisation), so a repeat matches byte for byte.
        wanted = json.loads(fhir.to_json(fhir.parse_resource(wanted, "Encounter")))
        kept = labels.security_of(before)
        security = labels.union(kept, labels.security_of(wanted))  # labels only go up
        if _content(before) == _content(wanted) and len(security) == len(kept):
            return current  # the same attendance again: nothing changes
        if security:
            wanted["meta"] = {"security": security}
    encounter_id = current.id if current is not None else str(uuid.uuid4())
    version = current.version + 1 if current is not None else 1
    resource = fhir.with_identity(
        fhir.parse_resource(wanted, "Encounter"), encounter_id, version, now
    )
    type_codes = [t["coding"][0]["code"] for t in wanted.get("type", [])]
    stored = store.encounters.StoredEncounter(
        encounter_id,
        session.id,
        patient_id,
        wanted["status"],
        session.start,
        type_codes[0] if type_codes else "",
        version,
        resource,
    )
    store.encounters.save_encounter(uow.conn, stored)
    return stored


def _content(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in {"id", "meta"}}
