"""Resources the careplan service owns: Patient, EpisodeOfCare, CarePlan, CareTeam, Goal,
NutritionOrder, Observation (recorded measures), MedicationStatement and MedicationRequest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, http_error
from iopcare.gateway.resources.base import (
    Change,
    Created,
    Found,
    ResourceHandler,
    TableCreate,
    TableHandler,
    TableRead,
    TableSearch,
    pages,
    require_patient,
    time_of,
)
from iopcare.gateway.search import DATE, REFERENCE, STRING, TOKEN, SearchParam


def found(message: Any, patient_id: str | None = None) -> Found:
    """A careplan message (CarePlan, CareTeam, Goal, EpisodeOfCare, RegistryEntry,
    ResourceVersion) as a Found."""
    return Found(
        message.id,
        int(message.version),
        patient_id if patient_id is not None else getattr(message, "patient_id", message.id),
        time_of(message.update_time),
        message.fhir_json,
    )


def _patient_params(*, subject: bool = True) -> tuple[SearchParam, ...]:
    params: tuple[SearchParam, ...] = (
        SearchParam("patient", REFERENCE, ("subject", "patient"), "the patient"),
    )
    if subject:
        params += (SearchParam("subject", REFERENCE, ("subject",), "the patient"),)
    return params


class VersionedCareplanResource(ResourceHandler):
    """vread and _history through careplan's generic version RPCs."""

    service: ClassVar[str] = "careplan"

    # Labels only go up, and a label applies to the record, not to one version of it: once the
    # current version is labelled (an SUD plan recognised as such), every earlier version is
    # released under the current labels too (42 CFR 2.12: the information is a Part 2 record
    # whichever version holds it). So vread and history carry the current version's labels.

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        request = pb.GetResourceVersionRequest(
            resource_type=self.type, id=resource_id, version=version
        )
        response = self.send(caller, request)
        old = found(response.resource)
        if old.version == 0 or not self.supports("read"):
            return old
        current = self.read(caller, resource_id)
        if current.version == old.version:
            return old
        return with_current_labels(old, current)

    def history(self, caller: Caller, resource_id: str) -> list[Found]:
        request = pb.ListResourceVersionsRequest(resource_type=self.type, id=resource_id)
        response = self.send(caller, request)
        versions = [found(v) for v in response.versions]
        if not versions:
            return versions
        newest = max(versions, key=lambda v: v.version)
        return [v if v is newest else with_current_labels(v, newest) for v in versions]


def with_current_labels(old: Found, current: Found) -> Found:
    """`old` carrying every security label of `current` it lacks (never fewer labels)."""
    labels = current.resource.get("meta", {}).get("security", [])
    if not labels:
        return old
    resource = json.loads(old.json)
    security = resource.setdefault("meta", {}).setdefault("security", [])
    have = {(s.get("system"), s.get("code")) for s in security if isinstance(s, dict)}
    added = [s for s in labels if (s.get("system"), s.get("code")) not in have]
    if not added:
        return old
    security.extend(added)
    return Found(
        old.id, old.version, old.patient_id, old.last_updated, json.dumps(resource), old.released
    )


class CareplanTable(VersionedCareplanResource, TableHandler):
    """A careplan resource as a table (base.TableHandler) with careplan's versions."""

    def stored(self, message: Any) -> Found:
        return found(message)


def _fhir_json(message: Any) -> Callable[[dict[str, Any], str], Any]:
    """The create mapping of careplan, which takes the FHIR resource as it is."""
    return lambda resource, request_id: message(
        request_id=request_id, fhir_json=json.dumps(resource)
    )


class CareplanUpdate(CareplanTable):
    update_request: ClassVar[Any] = None

    def update(self, caller: Caller, change: Change) -> Found:
        request = self.update_request(
            id=change.resource_id,
            expected_version=change.expected_version,
            fhir_json=json.dumps(change.resource),
            reason="FHIR update through the gateway",
            request_id=change.request_id,
        )
        return self.one(caller, request)


class PatientHandler(CareplanTable, TableRead):
    type = "Patient"
    params = (
        SearchParam("identifier", TOKEN, ("identifier",), "an identifier, system|value"),
        # US Core's name, birthdate and gender searches narrow a search by _id or identifier
        # (or a patient/ scope's patient): careplan has no search of its registry by name.
        SearchParam("name", STRING, ("name",), "starts a family, given, prefix or text name"),
        SearchParam("family", STRING, ("name.family",), "starts the family name"),
        SearchParam("given", STRING, ("name.given",), "starts a given name"),
        SearchParam("birthdate", DATE, ("birthDate",), "the date of birth"),
        SearchParam("gender", TOKEN, ("gender",), "male | female | other | unknown"),
    )
    documentation = (
        "Registration by identifier: a create whose identifier names a known patient links to it "
        "(200) instead of making a twin. Search by _id or identifier, narrowed by name, family, "
        "given, birthdate and gender (a search by name alone is refused: 400 too-costly)."
    )
    get_request = pb.GetPatientRequest
    field = "patient"

    def find(self, caller: Caller, system: str, value: str) -> Found | None:
        try:
            response = self.send(caller, pb.FindPatientRequest(system=system, value=value))
        except FhirHttpError as exc:
            if exc.status == 404:
                return None
            raise
        return found(response.patient)

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        known = None
        for identifier in resource.get("identifier", []):
            if identifier.get("system") and identifier.get("value"):
                known = known or self.find(caller, identifier["system"], identifier["value"])
        request = pb.RegisterPatientRequest(request_id=request_id, fhir_json=json.dumps(resource))
        response = self.send(caller, request)
        return Created(found(response.patient), created=known is None)

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        wanted = patient_id or query.get("_id")
        ids = wanted.split(",") if wanted else None
        if "identifier" in query:
            results = []
            for token in query["identifier"].split(","):
                system, _, value = token.rpartition("|")
                hit = self.find(caller, system, value)
                if hit is not None:
                    results.append(hit)
            # Both parameters AND together: under a patient/ scope `_id` is the launch patient,
            # and an identifier naming someone else must find nobody (not the launch patient).
            return results if ids is None else [r for r in results if r.id in ids]
        if ids is not None:
            results = []
            for one in ids:
                try:
                    results.append(self.read(caller, one))
                except FhirHttpError as exc:
                    if exc.status != 404:
                        raise
            return results
        raise http_error(
            400,
            "too-costly",
            "a Patient search needs _id or identifier (name, birthdate and gender narrow it; "
            "the registry is not searched by name)",
            "Patient.identifier",
        )


class EpisodeOfCareHandler(CareplanTable, TableRead, TableCreate, TableSearch):
    type = "EpisodeOfCare"
    params = (
        SearchParam("patient", REFERENCE, ("patient",), "the patient"),
        SearchParam("status", TOKEN, ("status",), "planned | active | onhold | finished | ..."),
        SearchParam("type", TOKEN, ("type",), "the program"),
        SearchParam("date", DATE, ("period",), "the stay's period"),
    )
    includes = ("EpisodeOfCare:patient",)
    documentation = (
        "The IOP stay. Created planned; status and level of care then change only through "
        "careplan's admit, level-of-care and discharge operations (no REST update)."
    )

    get_request = pb.GetEpisodeRequest
    create_command = _fhir_json(pb.CreateEpisodeRequest)
    list_request = pb.ListEpisodesRequest
    field = "episode"
    items = "episodes"


class CarePlanHandler(CareplanUpdate, TableRead, TableCreate, TableSearch):
    type = "CarePlan"
    params = (
        *_patient_params(),
        SearchParam("status", TOKEN, ("status",), "draft | active | on-hold | ..."),
        SearchParam("category", TOKEN, ("category",), "e.g. assess-plan"),
        SearchParam("intent", TOKEN, ("intent",), "proposal | plan | order | option"),
        SearchParam("date", DATE, ("period",), "the plan's period"),
    )
    includes = ("CarePlan:subject", "CarePlan:patient")
    documentation = "The IOP treatment plan; updates follow the plan lifecycle."

    get_request = pb.GetCarePlanRequest
    create_command = _fhir_json(pb.CreateCarePlanRequest)
    update_request = pb.UpdateCarePlanRequest
    list_request = pb.ListCarePlansRequest
    field = "care_plan"
    items = "care_plans"


class CareTeamHandler(CareplanUpdate, TableRead, TableCreate, TableSearch):
    type = "CareTeam"
    params = (
        *_patient_params(),
        SearchParam("status", TOKEN, ("status",), "proposed | active | suspended | inactive"),
        SearchParam("category", TOKEN, ("category",), "the kind of team"),
        SearchParam("date", DATE, ("period",), "the team's period"),
    )
    includes = ("CareTeam:subject", "CareTeam:patient")
    documentation = "Membership of an active team is what grants a clinician access."

    get_request = pb.GetCareTeamRequest
    create_command = _fhir_json(pb.CreateCareTeamRequest)
    update_request = pb.UpdateCareTeamRequest
    list_request = pb.ListCareTeamsRequest
    field = "care_team"
    items = "care_teams"


class GoalHandler(CareplanTable, TableRead, TableCreate, TableSearch):
    type = "Goal"
    params = (
        *_patient_params(),
        SearchParam("lifecycle-status", TOKEN, ("lifecycleStatus",), "proposed | active | ..."),
        SearchParam("achievement-status", TOKEN, ("achievementStatus",), "improving | ..."),
        SearchParam("category", TOKEN, ("category",), "the kind of goal"),
        SearchParam("target-date", DATE, ("target.dueDate",), "when a target is due"),
    )
    includes = ("Goal:subject", "Goal:patient")
    documentation = "Goals change through recorded measures (achievementStatus), not updates."

    get_request = pb.GetGoalRequest
    create_command = _fhir_json(pb.CreateGoalRequest)
    list_request = pb.ListGoalsRequest
    field = "goal"
    items = "goals"


class NutritionOrderHandler(CareplanUpdate, TableRead, TableCreate, TableSearch):
    type = "NutritionOrder"
    params = (
        SearchParam("patient", REFERENCE, ("patient",), "the patient"),
        SearchParam("status", TOKEN, ("status",), "draft | active | on-hold | ..."),
        SearchParam("datetime", DATE, ("dateTime",), "when the plan was written"),
    )
    includes = ("NutritionOrder:patient",)
    documentation = (
        "The dietitian's individual nutrition plan: an oralDiet with its meal and snack schedule, "
        "servings or exchanges, texture, supplements and restrictions, and for an eating disorder "
        "the weight target the dietitian sets (docs/nutrition.md). Written by the patient's "
        "dietitian (or psychiatrist); the care team reads it."
    )

    get_request = pb.GetNutritionOrderRequest
    create_command = _fhir_json(pb.CreateNutritionOrderRequest)
    update_request = pb.UpdateNutritionOrderRequest
    list_request = pb.ListNutritionOrdersRequest
    field = "nutrition_order"
    items = "nutrition_orders"


class MedicationStatementHandler(CareplanTable, TableRead, TableCreate, TableSearch):
    type = "MedicationStatement"
    params = (
        *_patient_params(),
        SearchParam("status", TOKEN, ("status",), "active | stopped | completed | ..."),
        SearchParam("code", TOKEN, ("medicationCodeableConcept",), "RxNorm code"),
        SearchParam("effective", DATE, ("effectivePeriod", "effectiveDateTime"), "when taken"),
    )
    includes = ("MedicationStatement:subject", "MedicationStatement:patient")
    documentation = (
        "The medication list the prescribers (psychiatrist, physician) keep: RxNorm code, dose "
        "with its UCUM unit, route, frequency, start and stop; created by a prescriber or by "
        "the reconciliation of an intake's inbound medications; changed through careplan's "
        "update (with its reason), each version kept. A medication for opioid or alcohol use "
        "disorder carries the 42 CFR Part 2 label (ETH) (docs/medications.md)."
    )

    get_request = pb.GetMedicationStatementRequest
    create_command = _fhir_json(pb.CreateMedicationStatementRequest)
    list_request = pb.ListMedicationStatementsRequest
    field = "medication"
    items = "medications"


class MedicationRequestHandler(CareplanTable, TableRead, TableCreate, TableSearch):
    type = "MedicationRequest"
    params = (
        *_patient_params(),
        SearchParam("status", TOKEN, ("status",), "active | on-hold | stopped | ..."),
        SearchParam("intent", TOKEN, ("intent",), "order | plan | ..."),
        SearchParam("code", TOKEN, ("medicationCodeableConcept",), "RxNorm code"),
    )
    includes = ("MedicationRequest:subject", "MedicationRequest:patient")
    documentation = (
        "What the program prescribes (prescribers only), with the rules and labels of "
        "MedicationStatement."
    )

    get_request = pb.GetMedicationRequestRequest
    create_command = _fhir_json(pb.CreateMedicationRequestRequest)
    list_request = pb.ListMedicationRequestsRequest
    field = "medication"
    items = "medications"


class ObservationHandler(ResourceHandler):
    type = "Observation"
    service = "careplan"
    params = (
        *_patient_params(),
        SearchParam("code", TOKEN, ("code",), "LOINC code of the measure"),
        SearchParam("category", TOKEN, ("category",), "e.g. survey"),
        SearchParam("status", TOKEN, ("status",), "final | amended | ..."),
        SearchParam("date", DATE, ("effectiveDateTime", "effectivePeriod"), "when measured"),
    )
    includes = ("Observation:subject", "Observation:patient")
    documentation = (
        "Outcome measures (PHQ-9, GAD-7, AUDIT-C), vital signs (blood pressure panel, heart rate, "
        "weight, height, BMI, temperature), labs, withdrawal scales and urine drug screens "
        "(docs/clinical-thresholds.md); recorded once, not revised."
    )

    def read(self, caller: Caller, resource_id: str) -> Found:
        response = self.send(caller, pb.GetMeasureRequest(id=resource_id))
        return Found(
            resource_id, 1, response.patient_id, time_of(response.update_time), response.fhir_json
        )

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        current = self.read(caller, resource_id)
        if version != current.version:
            raise http_error(
                404, "not-found", f"Observation/{resource_id} has no version {version}"
            )
        return current

    def history(self, caller: Caller, resource_id: str) -> list[Found]:
        return [self.read(caller, resource_id)]

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        request = pb.RecordMeasureRequest(request_id=request_id, fhir_json=json.dumps(resource))
        response = self.send(caller, request)
        return Created(self.read(caller, response.observation_id))

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        patient = require_patient(patient_id, self.type)
        code = query.get("code", "")
        single = code.rpartition("|")[2] if code and "," not in code else ""
        listed = pages(
            lambda token: self.send(
                caller,
                pb.ListMeasuresRequest(
                    patient_id=patient, code=single, page_size=1000, page_token=token
                ),
            ),
            "fhir_json",
        )
        results = []
        for text in listed:
            resource = json.loads(text)
            results.append(Found(resource["id"], _version(resource), patient, None, text))
        return results


def _version(resource: dict[str, Any]) -> int:
    try:
        return int(resource.get("meta", {}).get("versionId", 1))
    except (TypeError, ValueError):
        return 1
