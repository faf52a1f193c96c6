"""Everything the gateway sends out, validated by HAPI FHIR's FhirInstanceValidator (R4 core
definitions, offline): a realistic IOP course is driven over REST against the real services, every
response body is kept, and HAPI must find no error in any of them. Warnings are listed (and
reported in docs/conformance.md), not failed."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from iopcare.careplan import codes
from iopcare.careplan.domain.utilization import ASAM_DIMENSIONS
from iopcare.careplan.utilization import Utilization
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.demo import demo_episode
from iopcare.gateway import uscore
from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from tests.support import hapi, harness, uscore_check
from tests.support.gateway import (
    FHIR_JSON,
    MRN_SYSTEM,
    Stack,
    discharge_bundle,
    practitioner_token,
)
from tests.support.medications import medication_request, medication_statement
from tests.support.monitoring import blood_pressure, cows, lithium, quantity, urine_screen
from tests.support.nutrition import behaviour, meal, nutrition_order, weight, weight_target
from tests.support.plans import care_team, iop_plan, phq9, phq9_goal
from tests.support.safety import cssrs_screen, safety_plan
from tests.support.utilization import authorization_example, coverage_example

pytestmark = pytest.mark.integration

JSON_HEADERS = {"Content-Type": FHIR_JSON}


class Collector:
    """Keeps every response body the gateway sends, one file each, for the validator."""

    def __init__(self, ehr: httpx.Client, folder: Path) -> None:
        self.ehr = ehr
        self.folder = folder
        self.kept: dict[str, str] = {}  # file name: resourceType

    def keep(self, name: str, response: httpx.Response, status: int | tuple[int, ...]) -> Any:
        expected = (status,) if isinstance(status, int) else status
        assert response.status_code in expected, (name, response.status_code, response.text)
        assert response.headers["content-type"].startswith(FHIR_JSON), name
        body = response.json()
        file = f"{len(self.kept):03d}-{name}.json"
        (self.folder / file).write_text(json.dumps(body, indent=1))
        self.kept[file] = body["resourceType"]
        return body

    def post(self, name: str, path: str, body: dict[str, Any], status: int = 201) -> Any:
        return self.keep(name, self.ehr.post(path, json=body, headers=JSON_HEADERS), status)

    def get(
        self,
        name: str,
        path: str,
        status: int | tuple[int, ...] = 200,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return self.keep(name, self.ehr.get(path, params=params), status)


def iop_course(stack: Stack, ehr: httpx.Client, out: Collector) -> None:
    mrn = uuid.uuid4().hex
    patient = out.post(
        "patient",
        "/Patient",
        {
            "resourceType": "Patient",
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
            "name": [{"family": "Abara", "given": ["Chidi"]}],
            "gender": "male",
            "birthDate": "1991-02-03",
            "telecom": [{"system": "phone", "value": "+1 555 0100", "use": "mobile"}],
        },
    )
    pid = patient["id"]
    # The program (an administrator) enrols the team and assigns the stay's care manager: an
    # outside EHR may do neither (issue 10 item 4). Their answers are validated like the rest.
    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as admin_client:
        program = Collector(admin_client, out.folder)
        program.kept = out.kept
        team = program.post("careteam", "/CareTeam", care_team(pid))
        episode = program.post("episode", "/EpisodeOfCare", demo_episode(pid, team["id"]))
    goal = out.post("goal", "/Goal", phq9_goal(pid))
    for n, (total, when) in enumerate(
        [(19, "2026-11-02T10:00:00Z"), (14, "2026-11-16T10:00:00Z"), (9, "2026-11-27T10:00:00Z")]
    ):
        out.post(f"phq9-{n}", "/Observation", phq9(pid, total, when=when))
    # Item 9 answered "several days": notes raises a crisis flag.
    out.post("phq9-item9", "/Observation", phq9(pid, 16, item9=1, when="2026-11-27T11:00:00Z"))
    # The physician's monitoring (issue 12): vital signs, a lab, a withdrawal scale and a
    # urine drug screen, each read back too.
    for name, body in (
        ("blood-pressure", blood_pressure(pid, 128, 82)),
        ("heart-rate", quantity(pid, "8867-4", 64, "/min")),
        ("temperature", quantity(pid, "8310-5", 36.9, "Cel")),
        ("lithium", lithium(pid, 0.8)),
        ("qtc", quantity(pid, "8636-3", 430, "ms")),
        ("cows", cows(pid, 4)),
        ("uds-opiates", urine_screen(pid, "19295-5", positive=False)),
    ):
        created = out.post(name, "/Observation", body)
        out.get(f"read-{name}", f"/Observation/{created['id']}")
    # The dietitian's nutrition plan (issue 13, part 2): created, read, updated and searched,
    # and the measures it brings (a weight then also gives a %EBW, supported meals, counts).
    with stack.client(practitioner_token(stack.settings, "dietitian", "diet-1")) as diet_client:
        dietitian = Collector(diet_client, out.folder)
        dietitian.kept = out.kept
        order = dietitian.post("nutrition-order", "/NutritionOrder", nutrition_order(pid))
        dietitian.get("read-nutrition-order", f"/NutritionOrder/{order['id']}")
        dietitian.keep(
            "update-nutrition-order",
            diet_client.put(
                f"/NutritionOrder/{order['id']}",
                json=dict(order, extension=[weight_target(58, 98, 108)]),
                headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
            ),
            200,
        )
        dietitian.get("history-nutrition-order", f"/NutritionOrder/{order['id']}/_history")
        dietitian.get("search-nutrition-order", "/NutritionOrder", params={"patient": pid})
        for name, body in (
            ("weight", weight(pid, 50.5, "2026-11-27T08:00:00Z")),
            ("meal", meal(pid, "lunch", 75, "2026-11-27T12:30:00Z")),
            ("binges", behaviour(pid, codes.BINGE_COUNT, 1, "2026-11-27T21:00:00Z")),
        ):
            dietitian.post(name, "/Observation", body)
        dietitian.get(
            "search-percent-ebw",
            "/Observation",
            params={"patient": pid, "code": f"{codes.MEASURE_SYSTEM}|{codes.PERCENT_EBW}"},
        )
    # The psychiatrist's medication list (issue 12, part 1): a statement and a prescription,
    # each read back, in its history, searched.
    with stack.client(practitioner_token(stack.settings, "psychiatrist", "psy-1")) as psy:
        prescriber = Collector(psy, out.folder)
        prescriber.kept = out.kept
        for kind, body in (
            ("MedicationStatement", medication_statement(pid)),
            ("MedicationRequest", medication_request(pid)),
        ):
            created = prescriber.post(kind, f"/{kind}", body)
            prescriber.get(f"read-{kind}", f"/{kind}/{created['id']}")
            prescriber.get(f"vread-{kind}", f"/{kind}/{created['id']}/_history/1")
            prescriber.get(f"history-{kind}", f"/{kind}/{created['id']}/_history")
            prescriber.get(f"search-{kind}", f"/{kind}", params={"patient": pid})
    plan = out.post("careplan", "/CarePlan", iop_plan(pid, team["id"]))
    # The patient's sister (issue 13, part 3): a family member the team shares nothing with yet.
    sister = out.post(
        "relatedperson",
        "/RelatedPerson",
        {
            "resourceType": "RelatedPerson",
            "active": True,
            "patient": {"reference": f"Patient/{pid}"},
            "relationship": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "SIS",
                            "display": "sister",
                        }
                    ]
                }
            ],
            "name": [{"family": "Abara", "given": ["Ngozi"]}],
            "telecom": [{"system": "phone", "value": "+1 555 0101", "use": "mobile"}],
            "extension": [
                {
                    "url": "https://iopcare.org/fhir/StructureDefinition/information-sharing",
                    "extension": [{"url": "basis", "valueCode": "none"}],
                }
            ],
        },
    )
    out.get("read-relatedperson", f"/RelatedPerson/{sister['id']}")
    utilization_review(stack, out, pid, team["id"])
    out.post(
        "message",
        "/Communication",
        {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": f"Patient/{pid}"},
            "priority": "routine",
            "payload": [{"contentString": "Missed Tuesday's group; called, coming Thursday."}],
        },
    )
    # The patient's own daily check-in (issue 12): the form, their answers, their search.
    with stack.client(
        auth.mint_token(
            stack.settings,
            subject=f"patient:{pid}",
            role="patient",
            patient_context=pid,
            scopes=["patient/Questionnaire.r", "patient/QuestionnaireResponse.cs"],
        )
    ) as app_client:
        patient_app = Collector(app_client, out.folder)
        patient_app.kept = out.kept
        form = patient_app.get("questionnaire", "/Questionnaire/iop-daily-checkin")
        patient_app.post(
            "checkin",
            "/QuestionnaireResponse",
            {
                "resourceType": "QuestionnaireResponse",
                "questionnaire": f"{form['url']}|{form['version']}",
                "status": "completed",
                "subject": {"reference": f"Patient/{pid}"},
                "item": [
                    {"linkId": "mood", "answer": [{"valueInteger": 5}]},
                    {"linkId": "craving", "answer": [{"valueInteger": 2}]},
                    {"linkId": "sleep-hours", "answer": [{"valueDecimal": 7.5}]},
                    {"linkId": "medication-taken", "answer": [{"valueBoolean": True}]},
                    {"linkId": "self-harm-thoughts", "answer": [{"valueBoolean": False}]},
                ],
            },
        )
        patient_app.get("search-checkin", "/QuestionnaireResponse", params={"patient": pid})

    # Scheduling proposes the plan's sessions, notes posts to the team thread (through Kafka).
    harness.eventually(
        lambda: ehr.get("/Appointment", params={"patient": pid}).json().get("total"), timeout=30
    )
    harness.eventually(
        lambda: ehr.get("/Flag", params={"patient": pid}).json().get("total"), timeout=30
    )
    safety_plan_course(stack, ehr, out, pid)
    # An attended session becomes an Encounter for billing (issue 14, part 5).
    session = ehr.get("/Appointment", params={"patient": pid}).json()["entry"][0]["resource"]
    attended = ehr.put(
        f"/Appointment/{session['id']}",
        json=dict(session, status="fulfilled"),
        headers={**JSON_HEADERS, "If-Match": f'W/"{session["meta"]["versionId"]}"'},
    )
    assert attended.status_code == 200, attended.text
    for kind in ("Patient", "CareTeam", "EpisodeOfCare", "Goal", "CarePlan"):
        rid = {"Patient": pid, "CareTeam": team["id"], "EpisodeOfCare": episode["id"]}.get(
            kind, goal["id"] if kind == "Goal" else plan["id"]
        )
        out.get(f"read-{kind}", f"/{kind}/{rid}")
        out.get(f"vread-{kind}", f"/{kind}/{rid}/_history/1")
        out.get(f"history-{kind}", f"/{kind}/{rid}/_history")
    # The crisis raised in the thread made the plan due for review (a new version): update
    # from the version read now.
    current = ehr.get(f"/CarePlan/{plan['id']}")
    revised = dict(current.json(), title="IOP plan, week 4 review")
    out.keep(
        "update-careplan",
        ehr.put(
            f"/CarePlan/{plan['id']}",
            json=revised,
            headers={**JSON_HEADERS, "If-Match": current.headers["ETag"]},
        ),
        200,
    )
    out.get("history-careplan-2", f"/CarePlan/{plan['id']}/_history")
    searches = {
        "Patient": {"identifier": f"{MRN_SYSTEM}|{mrn}"},
        "EpisodeOfCare": {"patient": pid, "_include": "EpisodeOfCare:patient"},
        "CarePlan": {"patient": pid, "_include": "CarePlan:subject"},
        "CareTeam": {"patient": pid, "status": "active"},
        "Goal": {"patient": pid},
        "Observation": {"patient": pid, "code": "http://loinc.org|44261-6", "_count": 2},
        "Appointment": {"patient": pid},
        "Encounter": {"patient": pid, "class": "AMB"},
        "Communication": {"patient": pid},
        "Flag": {"patient": pid},
        "RelatedPerson": {"patient": pid, "_include": "RelatedPerson:patient"},
        "MedicationStatement": {"patient": pid},
        "MedicationRequest": {"patient": pid},
        "Coverage": {"patient": pid},
        "ClaimResponse": {"patient": pid},
    }
    for kind, params in searches.items():
        out.get(f"search-{kind}", f"/{kind}", params=params)
    encounters = ehr.get("/Encounter", params={"patient": pid}).json()
    assert encounters["total"] == 1, encounters  # validated above, in search-Encounter
    out.get("search-summary", "/CarePlan", params={"patient": pid, "_summary": "true"})
    out.get("search-count", "/CarePlan", params={"patient": pid, "_summary": "count"})
    out.get("search-elements", "/CarePlan", params={"patient": pid, "_elements": "status,title"})
    out.get("everything", f"/Patient/{pid}/$everything")
    out.get("handoff-summary", f"/EpisodeOfCare/{episode['id']}/$handoff-summary")

    # Discharge from a detox unit handed over: once labelled under Part 2 (the plan and stay are
    # then withheld from outside callers), once not.
    for labelled in (True, False):
        name = "labelled" if labelled else "unlabelled"
        bundle = discharge_bundle(uuid.uuid4().hex, labelled=labelled)
        result = out.post(f"handoff-{name}", "/$handoff", bundle, status=200)
        created = [
            p["valueReference"]["reference"]
            for p in result["parameter"]
            if p["name"] in ("created", "matched")
        ]
        for reference in created:
            kind, rid = reference.split("/")[-2:]
            if kind in ("Patient", "EpisodeOfCare", "CarePlan"):
                out.get(f"{name}-{kind}", f"/{kind}/{rid}", status=(200, 403))
            if kind == "Patient":
                # The labelled discharge's Patient is R (restricted): without the patient's
                # consent its $everything is refused like a read of it (issue 10, 11).
                out.get(
                    f"{name}-everything",
                    f"/Patient/{rid}/$everything",
                    status=(403,) if labelled else (200,),
                )
            if kind == "EpisodeOfCare" and not labelled:
                out.get(f"{name}-summary", f"/EpisodeOfCare/{rid}/$handoff-summary")
            if kind in ("DocumentReference", "Observation") and not labelled:
                # What the handoff keeps besides the plan (ADR 0030): the discharge summary note
                # of the stay, the measures.
                out.get(f"{name}-{kind}", f"/{kind}/{rid}")
            if kind == "Patient" and not labelled:
                # The plan's template goals are Goals of their own (ADR 0022).
                goals = out.get(f"{name}-goals", "/Goal", params={"patient": rid})
                assert goals["total"] == 3, goals

    # Batch and transaction responses.
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
            {"request": {"method": "GET", "url": f"CarePlan?patient={pid}"}},
            {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": phq9_goal(pid),
                "request": {"method": "POST", "url": "Goal"},
            },
        ],
    }
    out.post("batch-response", "", batch, status=200)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": phq9(pid, 8, when="2026-11-28T10:00:00Z"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "GET", "url": f"Goal?patient={pid}"}},
        ],
    }
    out.post("transaction-response", "", transaction, status=200)
    out.keep(
        "prefer-outcome",
        ehr.post(
            "/Observation",
            json=phq9(pid, 7, when="2026-11-29T10:00:00Z"),
            headers={**JSON_HEADERS, "Prefer": "return=OperationOutcome"},
        ),
        201,
    )

    # Outcomes of refusals are resources the gateway sends too.
    out.get("not-found", "/Patient/does-not-exist", status=404)
    out.get("too-costly", "/CarePlan", status=400)
    out.keep(
        "invalid",
        ehr.post("/CarePlan", json={"resourceType": "CarePlan"}, headers=JSON_HEADERS),
        422,
    )
    out.keep(
        "stale",
        ehr.put(
            f"/CarePlan/{plan['id']}", json=revised, headers={**JSON_HEADERS, "If-Match": 'W/"1"'}
        ),
        412,
    )


def safety_plan_course(stack: Stack, ehr: httpx.Client, out: Collector, pid: str) -> None:
    """Issue 12, part 3: a C-SSRS screen, the published Questionnaire and the patient's safety
    plan (written by the therapist, versioned), read back by the EHR."""
    out.post("cssrs", "/Observation", cssrs_screen(pid, {1: True, 2: False, 6: False}))
    out.get("questionnaire", "/Questionnaire/stanley-brown-safety-plan")
    with stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as therapist:
        clinic = Collector(therapist, out.folder)
        clinic.kept = out.kept
        plan = clinic.post("safety-plan", "/QuestionnaireResponse", safety_plan(pid))
        current = therapist.get(f"/QuestionnaireResponse/{plan['id']}")
        clinic.keep(
            "safety-plan-2",
            therapist.put(
                f"/QuestionnaireResponse/{plan['id']}",
                json={**safety_plan(pid, status="amended"), "id": plan["id"]},
                headers={**JSON_HEADERS, "If-Match": current.headers["ETag"]},
            ),
            200,
        )
    out.get("read-safety-plan", f"/QuestionnaireResponse/{plan['id']}")
    out.get("history-safety-plan", f"/QuestionnaireResponse/{plan['id']}/_history")
    out.get("search-safety-plan", "/QuestionnaireResponse", params={"patient": pid})


def utilization_review(stack: Stack, out: Collector, pid: str, team_id: str) -> None:
    """Issue 14 part 4: a stay admitted with its ASAM assessment, the patient's Coverage, an
    authorization ending within 7 days, the team task it raises and the stay's UR packet (kept
    as careplan answers them over gRPC and Kafka: the gateway serves neither yet)."""
    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as admin_client:
        program = Collector(admin_client, out.folder)
        program.kept = out.kept
        stay = program.post("episode-ur", "/EpisodeOfCare", demo_episode(pid, team_id))
    token = auth.service_token(stack.settings, "test")
    with harness.channel(stack.runtimes["careplan"]) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        stub.AdmitPatient(
            pb.AdmitPatientRequest(
                id=stay["id"],
                expected_version=1,
                asam_ratings=[
                    pb.AsamRating(dimension=d, rating=r, note="assessed at intake" if r else "")
                    for d, r in zip(ASAM_DIMENSIONS, (1, 0, 3, 2, 3, 1), strict=True)
                ],
            ),
            metadata=bearer(token),
        )
        out.get("read-episode-asam", f"/EpisodeOfCare/{stay['id']}")
        coverage = out.post("coverage", "/Coverage", coverage_example(pid))
        out.get("read-coverage", f"/Coverage/{coverage['id']}")
        today = datetime.now(UTC).date()
        authorization = out.post(
            "authorization",
            "/ClaimResponse",
            authorization_example(
                pid,
                stay["id"],
                coverage["id"],
                today - timedelta(days=20),
                today + timedelta(days=5),
            ),
        )
        out.get("read-authorization", f"/ClaimResponse/{authorization['id']}")
        Utilization(stack.runtimes["careplan"].db).announce_alerts()
        tasks = stub.GetAuthorization(
            pb.GetAuthorizationRequest(id=authorization["id"]), metadata=bearer(token)
        ).authorization.tasks
        packet = stub.GetUtilizationReviewPacket(
            pb.GetUtilizationReviewPacketRequest(
                id=authorization["id"],
                requested_units=8,
                reason="PHQ-9 still moderate",
                base_url=stack.base_url,
            ),
            metadata=bearer(token),
        ).fhir_json
    assert len(tasks) == 1
    for name, kind, text in (
        ("authorization-task", "Task", tasks[0]),
        ("ur-packet", "Bundle", packet),
    ):
        file = f"{len(out.kept):03d}-{name}.json"
        (out.folder / file).write_text(text)
        out.kept[file] = kind


def test_every_resource_the_gateway_returns_is_valid_r4(
    stack: Stack, ehr: httpx.Client, hapi_jar: Path, tmp_path: Path
) -> None:
    out = Collector(ehr, tmp_path)
    out.get("metadata", "/metadata")
    out.get("operation-handoff", "/OperationDefinition/handoff")
    out.get("operation-handoff-summary", "/OperationDefinition/handoff-summary")
    out.get("operation-export-csv", "/OperationDefinition/export-csv")
    iop_course(stack, ehr, out)
    kinds = Counter(out.kept.values())
    assert kinds["CapabilityStatement"] == 1 and kinds["OperationDefinition"] == 3
    assert kinds["Bundle"] >= 20 and kinds["OperationOutcome"] >= 4, kinds

    report = hapi.validate(hapi_jar, [tmp_path])
    assert set(report.files) == set(out.kept), "HAPI validated every file"
    assert not report.errors(), hapi.format_issues(report.errors())
    # US Core 6.1 (ADR 0031): HAPI cannot have the package here, so it reports each claimed
    # profile as unknown, and the only profiles it may not know are US Core's; their required
    # and Must Support elements are checked from the gateway's table instead.
    unknown = [i for i in report.issues if "us/core/StructureDefinition" in i.message]
    assert unknown, "the responses claim US Core profiles"
    others = [i for i in report.issues if "PROFILE" in i.message_id.upper() and i not in unknown]
    assert not others, hapi.format_issues(others)
    # US Core claims are added where the gateway releases resources: the bodies kept straight
    # from careplan over gRPC (the UR task and packet, not served over REST) are not checked.
    from_grpc = ("-authorization-task.json", "-ur-packet.json")
    bodies = {
        f: json.loads((tmp_path / f).read_text()) for f in out.kept if not f.endswith(from_grpc)
    }
    us_core = uscore_check.check(bodies)
    assert not us_core.problems, "\n".join(us_core.problems)
    assert not us_core.unclaimed, "\n".join(us_core.unclaimed)
    served = {"Patient", "CareTeam", "Goal", "CarePlan", "MedicationRequest"}
    assert served <= {uscore.BY_URL[uscore.US_CORE + p].type for p in us_core.claims}
    assert {
        "us-core-observation-screening-assessment",
        "us-core-blood-pressure",
        "us-core-heart-rate",
        "us-core-body-temperature",
        "us-core-observation-lab",
    } <= set(us_core.claims), us_core.claims
    print(f"US Core claims {dict(us_core.claims)}; unprofiled {dict(us_core.unprofiled)}")
    for (profile_id, path), count in sorted(us_core.must_support_gaps.items()):
        print(f"must-support absent x{count} {profile_id}: {path}")
    warnings = Counter((i.message_id, out.kept[i.file]) for i in report.warnings())
    # Listed with -rA / on failure; docs/conformance.md summarises them.
    print(f"validated {len(report.files)} responses, {dict(kinds)}")
    for (message_id, kind), count in sorted(warnings.items()):
        print(f"warning x{count} {kind}: {message_id}")
