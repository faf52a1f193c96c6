"""Encounters for billing, read back: a search by patient, period and billing code (FHIR
Encounter search in the gateway), and the CSV a billing system imports (one row per Encounter).

Who may: the program's billing staff (role `billing`) and administrators, for every patient;
a patient's care team (and break-glass, audited) for that patient. The CSV carries no security
labels, so it never goes to an outside EHR (role `system`): those read FHIR Encounters through
the gateway, whose release rule withholds Part 2 labelled ones without the patient's consent.
Every read is audited, one row per patient seen."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from iopcare.kit import audit, fhir, paging, teams
from iopcare.kit.access import EHR_ROLE
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database
from iopcare.kit.errors import FieldViolation, FieldViolations, InvalidArgument, PermissionDenied
from iopcare.scheduling import store
from iopcare.scheduling.domain.billing import Line, day_units

#: Roles that see every patient's Encounters (billing is a use of the record for payment,
#: HIPAA 45 CFR 164.506; within the program for Part 2, 42 CFR 2.12(c)(3)).
BILLING_ROLES = frozenset({"billing", "admin"})
#: Encounters the export reads at most (a month of a large program is far below it).
MAX_EXPORT = 20000
CSV_COLUMNS = (
    "encounter_id",
    "patient_id",
    "date",
    "start",
    "end",
    "code_system",
    "code",
    "units",
    "other_codes",
    "rendering_practitioner",
    "service_type",
    "status",
    "episode_of_care",
    "appointment_id",
)


@dataclass(frozen=True)
class EncounterQuery:
    patient_id: str
    start_from: datetime | None
    start_before: datetime | None
    code: str
    page_size: int
    page_token: str


def _position(token: str) -> tuple[datetime, str] | None:
    position = paging.decode(token, {"start": str, "id": str})
    if position is None:
        return None
    try:
        return datetime.fromisoformat(position["start"]), str(position["id"])
    except ValueError:
        raise InvalidArgument(
            "page_token is not one this server issued",
            [FieldViolation("page_token", "invalid page token")],
        ) from None


def _check(query: EncounterQuery) -> None:
    problems = FieldViolations()
    if query.patient_id and not fhir.is_valid_id(query.patient_id):
        problems.add("patient_id", "a logical id")
    if query.start_from and query.start_before and query.start_before <= query.start_from:
        problems.add("end_time", "after start_time")
    if len(query.code) > 32:
        problems.add("code", "at most 32 characters")
    problems.raise_if_any("the encounter search is invalid")


class EncounterReads:
    def __init__(self, db: Database, access: teams.TeamAccess, zone: ZoneInfo) -> None:
        self.db = db
        self.access = access
        self.zone = zone

    def _basis(self, principal: Principal, patient_id: str) -> str:
        if principal.role in BILLING_ROLES and principal.patient_limit is None:
            return f"role:{principal.role}"
        if not patient_id:
            raise PermissionDenied(
                "only billing staff and administrators read every patient's encounters",
                reason="NOT_BILLING_STAFF",
            )
        with self.db.read() as conn:
            return self.access.basis(conn, principal, patient_id)

    def _audit(self, principal: Principal, patients: list[str], asked: str, detail: str) -> None:
        audited: list[str | None] = [*sorted(set(patients))] or [asked or None]
        for patient in audited:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.SEARCH,
                resource="Encounter",
                patient_id=patient,
                detail=detail,
            )

    def search(
        self, principal: Principal, query: EncounterQuery
    ) -> tuple[list[store.encounters.StoredEncounter], str]:
        """A page of Encounters, earliest first, and the next page's token."""
        with store.JOURNAL.refusals(
            self.db, principal, audit.SEARCH, "Encounter", patient_id=query.patient_id or None
        ):
            _check(query)
            size, after = paging.page_size(query.page_size), _position(query.page_token)
            basis = self._basis(principal, query.patient_id)
        with self.db.read() as conn:
            found = store.encounters.list_encounters(
                conn,
                patient_ids=[query.patient_id] if query.patient_id else None,
                start_from=query.start_from,
                start_before=query.start_before,
                code=query.code,
                limit=size + 1,
                after=after,
            )
        token = ""
        if len(found) > size:
            found = found[:size]
            token = paging.encode({"start": found[-1].start.isoformat(), "id": found[-1].id})
        self._audit(
            principal,
            [e.patient_id for e in found],
            query.patient_id,
            f"{len(found)} hits; {basis}",
        )
        return found, token

    def export_csv(
        self,
        principal: Principal,
        start_from: datetime | None,
        start_before: datetime | None,
        patient_id: str = "",
    ) -> tuple[bytes, int]:
        """The period's Encounters as CSV (UTF-8, a header row, one row per Encounter) and how
        many there are."""
        query = EncounterQuery(patient_id, start_from, start_before, "", MAX_EXPORT, "")
        with store.JOURNAL.refusals(
            self.db, principal, audit.SEARCH, "Encounter", patient_id=patient_id or None
        ):
            problems = FieldViolations()
            if start_from is None:
                problems.add("start_time", "required: the first instant of the period")
            if start_before is None:
                problems.add("end_time", "required: the end of the period (exclusive)")
            problems.raise_if_any("the export is invalid")
            _check(query)
            if principal.role == EHR_ROLE:
                raise PermissionDenied(
                    "the billing export is not released outside the program",
                    reason="NOT_BILLING_STAFF",
                )
            basis = self._basis(principal, patient_id)
        with self.db.read() as conn:
            found = store.encounters.list_encounters(
                conn,
                patient_ids=[patient_id] if patient_id else None,
                start_from=start_from,
                start_before=start_before,
                code="",
                limit=MAX_EXPORT + 1,
                after=None,
            )
        if len(found) > MAX_EXPORT:
            raise InvalidArgument(
                f"more than {MAX_EXPORT} encounters in the period: export a shorter one",
                [FieldViolation("end_time", "a shorter period")],
            )
        body = encounters_csv([json.loads(e.resource) for e in found], self.zone)
        self._audit(
            principal,
            [e.patient_id for e in found],
            patient_id,
            f"billing export, {len(found)} encounters; {basis}",
        )
        return body, len(found)


def encounters_csv(resources: list[dict[str, Any]], zone: ZoneInfo) -> bytes:
    """Encounters (FHIR JSON, in start order) as the billing CSV: UTF-8, a header row, one row
    per Encounter, CRLF line ends (scheduling's export and the gateway's, which passes only the
    Encounters its release rule lets out)."""
    rows = [_row(resource, zone) for resource in resources]
    units = day_units(
        Line(row["encounter_id"], row["patient_id"], row["date"], row["code"]) for row in rows
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "units": units[row["encounter_id"]]})
    return out.getvalue().encode("utf-8")


def _reference_id(value: Any, kind: str) -> str:
    reference = str((value or {}).get("reference", ""))
    return reference.removeprefix(f"{kind}/") if reference.startswith(f"{kind}/") else ""


def _row(data: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    codings = [t["coding"][0] for t in data.get("type", []) if t.get("coding")]
    first = codings[0] if codings else {}
    rendering = next(
        (
            p["individual"]["reference"]
            for p in data.get("participant", [])
            if any(c.get("code") == "PPRF" for t in p.get("type", []) for c in t.get("coding", []))
        ),
        "",
    )
    service: dict[str, Any] = next(iter((data.get("serviceType") or {}).get("coding", [])), {})
    period = data.get("period", {})
    start = str(period.get("start", ""))
    day = (
        datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(zone).date().isoformat()
        if start
        else ""
    )
    return {
        "encounter_id": str(data.get("id", "")),
        "patient_id": _reference_id(data.get("subject"), "Patient"),
        # The day of service in the program's zone (a per diem is a local day).
        "date": day,
        "start": start,
        "end": period.get("end", ""),
        "code_system": first.get("system", ""),
        "code": first.get("code", ""),
        "other_codes": " ".join(c.get("code", "") for c in codings[1:]),
        "rendering_practitioner": rendering,
        "service_type": service.get("code", ""),
        "status": data.get("status", ""),
        "episode_of_care": " ".join(r["reference"] for r in data.get("episodeOfCare", [])),
        "appointment_id": _reference_id((data.get("appointment") or [{}])[0], "Appointment"),
    }
