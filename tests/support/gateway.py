"""The gateway under test: the three services in this process on the test's database and the
session's Kafka, and the gateway's ASGI app served by a real uvicorn server on a free port, so
tests talk HTTP to it with httpx like an EHR would."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from iopcare.gateway.app import build
from iopcare.gateway.settings import GatewaySettings
from iopcare.kit import auth
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness

FHIR_JSON = "application/fhir+json"


@dataclass
class Stack:
    settings: Settings
    base_url: str
    runtimes: dict[str, ServiceRuntime]
    audit: list[dict[str, Any]] = field(default_factory=list)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


def system_token(
    settings: Settings,
    scopes: list[str] | None = None,
    *,
    lifetime: int = 300,
    subject: str = "system:test-ehr",
) -> str:
    """A SMART Backend Services style token, as `iopcare token --system` prints."""
    return auth.mint_token(
        settings,
        subject=subject,
        role="system",
        scopes=scopes if scopes is not None else ["system/*.cruds"],
        lifetime_seconds=lifetime,
    )


def in_program(stack: Stack, resource_type: str, resource_id: str) -> dict[str, Any]:
    """A careplan resource as the services hold it (over gRPC, as an internal service identity):
    for checking what the gateway withholds from outside callers."""
    import json

    from iopcare.careplan.v1 import careplan_service_pb2 as pb
    from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
    from iopcare.kit.rpc import bearer

    # An internal identity (role `service`): an EHR's `system` token is limited to its scopes.
    token = auth.service_token(stack.settings, "test")
    with harness.channel(stack.runtimes["careplan"]) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        if resource_type == "CarePlan":
            text = stub.GetCarePlan(
                pb.GetCarePlanRequest(id=resource_id), metadata=bearer(token)
            ).care_plan.fhir_json
        elif resource_type == "Goal":
            text = stub.GetGoal(
                pb.GetGoalRequest(id=resource_id), metadata=bearer(token)
            ).goal.fhir_json
        elif resource_type == "EpisodeOfCare":
            text = stub.GetEpisode(
                pb.GetEpisodeRequest(id=resource_id), metadata=bearer(token)
            ).episode.fhir_json
        else:
            text = stub.GetPatient(
                pb.GetPatientRequest(id=resource_id), metadata=bearer(token)
            ).patient.fhir_json
    result: dict[str, Any] = json.loads(text)
    return result


def practitioner_token(
    settings: Settings, role: str, practitioner: str, scopes: list[str] | None = None
) -> str:
    return auth.mint_token(
        settings,
        subject=f"practitioner:{practitioner}",
        role=role,
        practitioner_id=practitioner,
        scopes=scopes if scopes is not None else ["user/*.cruds"],
        lifetime_seconds=600,
    )


@contextmanager
def running_stack(
    settings: Settings,
    database_urls: dict[str, str],
    service_host: str = "127.0.0.1",
    subscriptions: Any = None,
    **gateway_overrides: Any,
) -> Iterator[Stack]:
    """`service_host`: the name the gateway dials the services by (`localhost` when their TLS
    certificate names that); `subscriptions`: the gateway's SubscriptionSettings (off if None)."""
    runtimes = {
        name: harness.build(name, settings, database_urls[name])
        for name in ("careplan", "scheduling", "notes")
    }
    for runtime in runtimes.values():
        runtime.start()
    audit: list[dict[str, Any]] = []
    gateway_settings = GatewaySettings(
        careplan_address=f"{service_host}:{runtimes['careplan'].port}",
        scheduling_address=f"{service_host}:{runtimes['scheduling'].port}",
        notes_address=f"{service_host}:{runtimes['notes'].port}",
        **gateway_overrides,
    )
    app, gateway = build(settings, gateway_settings, audit.append, subscriptions)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{uuid.uuid4().hex[:6]}")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the gateway's server did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Stack(settings, f"http://127.0.0.1:{port}/fhir", runtimes, audit)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if gateway.subscriptions is not None:
            gateway.subscriptions.stop()
        gateway.services.close()
        for runtime in runtimes.values():
            runtime.stop(grace=0.5)


SERVICE_NAMES = ("careplan", "scheduling", "notes")


@contextmanager
def stack_for(
    database: str,
    tmp_path_factory: Any,
    kafka_bootstrap: str,
    label: str,
    postgres_server: Any = None,
    **gateway: Any,
) -> Iterator[Stack]:
    """The three services and the gateway on `database` ("sqlite" or "postgresql", a database of
    each service's own), on topics of their own: what a gateway test module runs against."""
    folder = tmp_path_factory.mktemp(label)
    settings = harness.settings_for(
        folder, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    )
    if database == "sqlite":
        urls = {name: f"sqlite:///{folder / name}.db" for name in SERVICE_NAMES}
    else:
        if postgres_server is None:
            harness.missing("PostgreSQL is not available on this machine")
        urls = {
            name: str(postgres_server.create_database(f"g_{name}_{uuid.uuid4().hex[:12]}"))
            for name in SERVICE_NAMES
        }
    with running_stack(settings, urls, **gateway) as running:
        yield running


def hl7_bundle_dir() -> Any:
    """The official HL7 R4 example Bundles (same npm package as tests/support/hl7_examples.py,
    which extracts only single resources), fetched once into `.cache/hl7/r4-bundles-4.0.1`."""
    import shutil
    import subprocess
    import tarfile
    import tempfile
    from pathlib import Path

    from tests.support import hl7_examples

    cache = hl7_examples.CACHE.with_name("r4-bundles-4.0.1")
    if (cache / ".complete").exists():
        return cache
    if shutil.which("npm") is None:
        harness.missing("npm is not installed, so the HL7 example package cannot be fetched")
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            ["npm", "pack", hl7_examples.PACKAGE, "--silent"],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=300,
        )
        (archive,) = Path(folder).glob("*.tgz")
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name.startswith("Bundle-") and name.endswith(".json"):
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        (partial / name).write_bytes(extracted.read())
        (partial / ".complete").touch()
        shutil.rmtree(cache, ignore_errors=True)
        partial.rename(cache)
    return cache


MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.72.5.20"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SUD_LABEL = {
    "system": ACT_CODE,
    "code": "ETH",
    "display": "substance abuse information sensitivity",
}
RESTRICTED = {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}


def discharge_bundle(
    mrn: str, bundle_type: str = "document", vitals: int = 0, labelled: bool = True
) -> dict[str, Any]:
    """A realistic discharge from a detox unit: a discharge summary document with the patient,
    two diagnoses (one SUD-labelled under 42 CFR Part 2), medications, an allergy, the referral
    to the IOP, the discharging physician, the encounter and a last PHQ-9."""
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    urls = {
        name: f"urn:uuid:{uuid.uuid4()}"
        for name in ("enc", "doc", "c1", "c2", "m1", "m2", "a1", "sr", "obs", "comp")
    }
    subject = {"reference": patient_url}
    resources: list[tuple[str, dict[str, Any]]] = [
        (
            urls["comp"],
            {
                "resourceType": "Composition",
                "status": "final",
                "type": {
                    "coding": [
                        {
                            "system": "http://loinc.org",
                            "code": "18842-5",
                            "display": "Discharge summary",
                        }
                    ]
                },
                "subject": subject,
                "date": "2026-11-26T15:00:00Z",
                "author": [{"reference": urls["doc"]}],
                "title": "Discharge summary: inpatient withdrawal management",
                "section": [
                    {
                        "title": "Problems",
                        "entry": [{"reference": urls["c1"]}, {"reference": urls["c2"]}],
                    },
                    {
                        "title": "Medications",
                        "entry": [{"reference": urls["m1"]}, {"reference": urls["m2"]}],
                    },
                    {"title": "Allergies", "entry": [{"reference": urls["a1"]}]},
                ],
            },
        ),
        (
            patient_url,
            {
                "resourceType": "Patient",
                "meta": {"security": [RESTRICTED]},
                "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
                "name": [{"family": "Okafor", "given": ["Jordan"]}],
                "gender": "other",
                "birthDate": "1988-04-12",
            },
        ),
        (
            urls["doc"],
            {
                "resourceType": "Practitioner",
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
                "name": [{"family": "Lindqvist", "given": ["Maria"], "prefix": ["Dr"]}],
            },
        ),
        (
            urls["enc"],
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "IMP",
                },
                "subject": subject,
                "period": {"start": "2026-11-19T09:00:00Z", "end": "2026-11-26T14:00:00Z"},
            },
        ),
        (
            urls["c1"],
            {
                "resourceType": "Condition",
                "meta": {"security": [SUD_LABEL, RESTRICTED]},
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/sid/icd-10-cm",
                            "code": "F10.20",
                            "display": "Alcohol dependence, uncomplicated",
                        }
                    ]
                },
                "subject": subject,
                "encounter": {"reference": urls["enc"]},
            },
        ),
        (
            urls["c2"],
            {
                "resourceType": "Condition",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/sid/icd-10-cm",
                            "code": "F32.1",
                            "display": "Major depressive disorder, single episode, moderate",
                        }
                    ]
                },
                "subject": subject,
            },
        ),
        (
            urls["m1"],
            {
                "resourceType": "MedicationRequest",
                "meta": {"security": [SUD_LABEL]},
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {
                    "coding": [
                        {
                            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                            "code": "1483744",
                            "display": "naltrexone 50 MG Oral Tablet",
                        }
                    ]
                },
                "subject": subject,
                "requester": {"reference": urls["doc"]},
                "dosageInstruction": [{"text": "50 mg by mouth once daily"}],
            },
        ),
        (
            urls["m2"],
            {
                "resourceType": "MedicationStatement",
                "status": "active",
                "medicationCodeableConcept": {
                    "coding": [
                        {
                            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                            "code": "312938",
                            "display": "sertraline 50 MG Oral Tablet",
                        }
                    ]
                },
                "subject": subject,
            },
        ),
        (
            urls["a1"],
            {
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {
                    "coding": [
                        {
                            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                            "code": "7980",
                            "display": "penicillin G",
                        }
                    ]
                },
                "patient": subject,
                "reaction": [{"manifestation": [{"text": "hives"}]}],
            },
        ),
        (
            urls["sr"],
            {
                "resourceType": "ServiceRequest",
                "identifier": [
                    {"system": "urn:oid:2.16.840.1.113883.3.72.5.21", "value": f"ref-{mrn}"}
                ],
                "status": "active",
                "intent": "order",
                "code": {"text": "Intensive outpatient program (SUD and depression)"},
                "subject": subject,
                "requester": {"reference": urls["doc"]},
            },
        ),
        (
            urls["obs"],
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                "subject": subject,
                "effectiveDateTime": "2026-11-26T10:00:00Z",
                "valueInteger": 14,
            },
        ),
    ]
    for n in range(vitals):
        # A week of nursing vitals, as real discharge bundles carry (sizes a bundle for benches).
        resources.append(
            (
                f"urn:uuid:{uuid.uuid4()}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                    "code": "vital-signs",
                                }
                            ]
                        }
                    ],
                    "code": {
                        "coding": [
                            {
                                "system": "http://loinc.org",
                                "code": "8867-4",
                                "display": "Heart rate",
                            }
                        ]
                    },
                    "subject": subject,
                    "effectiveDateTime": f"2026-11-{19 + n % 7:02d}T{n % 24:02d}:00:00Z",
                    "valueQuantity": {
                        "value": 60 + n % 40,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
            )
        )
    if not labelled:
        for _, resource in resources:
            resource.pop("meta", None)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:oid:2.16.840.1.113883.3.72.5.9", "value": f"dc-{mrn}"},
        "type": bundle_type,
        "timestamp": "2026-11-26T15:05:00Z",
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in resources],
    }
    if bundle_type == "transaction":
        # As an EHR sends it: conditional creates keyed on the identifiers it knows.
        for entry in bundle["entry"]:
            resource = entry["resource"]
            request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
            if resource.get("identifier"):
                first = resource["identifier"][0]
                request["ifNoneExist"] = f"identifier={first['system']}|{first['value']}"
            entry["request"] = request
        del bundle["identifier"]  # the content hash keys it then
    return bundle


def enrol_team(stack: Stack, patient_id: str) -> dict[str, Any]:
    """The patient's care team (psy-1, th-1, diet-1, doc-1, cm-1), enrolled as the program's
    administrator: a team is the program's act, never an outside EHR's (issue 10, defect 4)."""
    from tests.support.plans import care_team

    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as admin:
        team = admin.post(
            "/CareTeam", json=care_team(patient_id), headers={"Content-Type": FHIR_JSON}
        )
    assert team.status_code == 201, team.text
    result: dict[str, Any] = team.json()
    return result
