"""careplan's API guidelines in practice (issue 11): every List RPC pages in a stable order with
opaque tokens, past versions are read one way (with their Provenance), UpdateCareTeam takes an
update mask, and a review's date is a google.type.Date. Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import grpc
import pytest
from google.type import date_pb2

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id, phq9, phq9_goal

Metadata = list[tuple[str, str]]


def _rid() -> str:
    return str(uuid.uuid4())


def _pages(call: Callable[[str], Any], items: Callable[[Any], list[str]]) -> list[list[str]]:
    """Every page of a list, following next_page_token to the end."""
    pages, token = [], ""
    while True:
        response = call(token)
        pages.append(items(response))
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 20, "the pages never end"


def _refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value


def _patient_with_three_of_each(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> tuple[str, dict[str, list[str]]]:
    """A patient with three care plans, teams, goals, episodes and measures (two of the measures
    at the same effective time, so the tie-break decides their order); the ids in creation
    order."""
    me = harness.metadata(settings)
    admin = harness.metadata(settings, role="admin", practitioner="adm-1")
    patient_id = new_patient_id()
    made: dict[str, list[str]] = {"teams": [harness.enrol_over_grpc(stub, settings, patient_id)]}
    made["teams"] += [harness.create_team_over_grpc(stub, settings, patient_id) for _ in range(2)]
    listed = stub.ListEpisodes(pb.ListEpisodesRequest(patient_id=patient_id), metadata=admin)
    made["episodes"] = [e.id for e in listed.episodes]  # the one that assigned the case manager
    for _ in range(2):
        episode = {
            "resourceType": "EpisodeOfCare",
            "status": "planned",
            "patient": {"reference": f"Patient/{patient_id}"},
        }
        made["episodes"].append(
            stub.CreateEpisode(
                pb.CreateEpisodeRequest(request_id=_rid(), fhir_json=json.dumps(episode)),
                metadata=admin,
            ).episode.id
        )
    made["plans"] = [
        stub.CreateCarePlan(
            pb.CreateCarePlanRequest(
                request_id=_rid(), fhir_json=json.dumps(iop_plan(patient_id, made["teams"][0]))
            ),
            metadata=me,
        ).care_plan.id
        for _ in range(3)
    ]
    made["goals"] = [
        stub.CreateGoal(
            pb.CreateGoalRequest(request_id=_rid(), fhir_json=json.dumps(phq9_goal(patient_id))),
            metadata=me,
        ).goal.id
        for _ in range(3)
    ]
    made["measures"] = [
        stub.RecordMeasure(
            pb.RecordMeasureRequest(
                request_id=_rid(), fhir_json=json.dumps(phq9(patient_id, 12, when=when))
            ),
            metadata=me,
        ).observation_id
        for when in ("2026-11-01T10:00:00Z", "2026-11-08T10:00:00Z", "2026-11-08T10:00:00Z")
    ]
    return patient_id, made


def test_every_list_pages_in_a_stable_order_to_the_same_items_as_one_big_page(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    patient_id, made = _patient_with_three_of_each(stub, settings)

    def measure_ids(response: Any) -> list[str]:
        return [json.loads(text)["id"] for text in response.fhir_json]

    lists: dict[str, tuple[Callable[[int, str], Any], Callable[[Any], list[str]]]] = {
        "plans": (
            lambda size, token: stub.ListCarePlans(
                pb.ListCarePlansRequest(patient_id=patient_id, page_size=size, page_token=token),
                metadata=me,
            ),
            lambda r: [p.id for p in r.care_plans],
        ),
        "teams": (
            lambda size, token: stub.ListCareTeams(
                pb.ListCareTeamsRequest(patient_id=patient_id, page_size=size, page_token=token),
                metadata=me,
            ),
            lambda r: [t.id for t in r.care_teams],
        ),
        "goals": (
            lambda size, token: stub.ListGoals(
                pb.ListGoalsRequest(patient_id=patient_id, page_size=size, page_token=token),
                metadata=me,
            ),
            lambda r: [g.id for g in r.goals],
        ),
        "episodes": (
            lambda size, token: stub.ListEpisodes(
                pb.ListEpisodesRequest(patient_id=patient_id, page_size=size, page_token=token),
                metadata=me,
            ),
            lambda r: [e.id for e in r.episodes],
        ),
        "measures": (
            lambda size, token: stub.ListMeasures(
                pb.ListMeasuresRequest(
                    patient_id=patient_id, code="44261-6", page_size=size, page_token=token
                ),
                metadata=me,
            ),
            measure_ids,
        ),
    }
    for kind, (call, items) in lists.items():
        whole = _pages(lambda token, call=call: call(0, token), items)  # type: ignore[misc]
        assert len(whole) == 1, kind
        if kind == "measures":  # the tie (same effective time) is broken by when recorded, id
            assert whole[0][0] == made[kind][0] and set(whole[0]) == set(made[kind]), kind
        else:
            assert whole[0] == made[kind], kind  # oldest first
        for size in (1, 2):
            pages = _pages(lambda token, call=call, size=size: call(size, token), items)  # type: ignore[misc]
            assert [len(p) for p in pages] == ([1, 1, 1] if size == 1 else [2, 1]), kind
            assert [i for page in pages for i in page] == whole[0], kind


def test_a_list_that_grows_between_pages_repeats_and_skips_nothing(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    patient_id = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient_id)

    def create() -> str:
        return str(
            stub.CreateCarePlan(
                pb.CreateCarePlanRequest(
                    request_id=_rid(), fhir_json=json.dumps(iop_plan(patient_id, team_id))
                ),
                metadata=me,
            ).care_plan.id
        )

    created = [create() for _ in range(3)]
    first = stub.ListCarePlans(
        pb.ListCarePlansRequest(patient_id=patient_id, page_size=2), metadata=me
    )
    assert [p.id for p in first.care_plans] == created[:2] and first.next_page_token
    created.append(create())
    rest = stub.ListCarePlans(
        pb.ListCarePlansRequest(
            patient_id=patient_id, page_size=2, page_token=first.next_page_token
        ),
        metadata=me,
    )
    assert [p.id for p in rest.care_plans] == created[2:]
    assert rest.next_page_token == ""


def test_a_page_token_is_refused_with_another_query_or_when_forged(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    patient_id, _ = _patient_with_three_of_each(stub, settings)
    other = new_patient_id()
    harness.enrol_over_grpc(stub, settings, other)
    token = stub.ListGoals(
        pb.ListGoalsRequest(patient_id=patient_id, page_size=1), metadata=me
    ).next_page_token
    assert token
    _refused(  # another patient: never a page of patient B positioned by patient A's goal
        lambda: stub.ListGoals(
            pb.ListGoalsRequest(patient_id=other, page_size=1, page_token=token), metadata=me
        )
    )
    _refused(  # another list
        lambda: stub.ListCarePlans(
            pb.ListCarePlansRequest(patient_id=patient_id, page_token=token), metadata=me
        )
    )
    coded = stub.ListMeasures(
        pb.ListMeasuresRequest(patient_id=patient_id, code="44261-6", page_size=1), metadata=me
    ).next_page_token
    _refused(  # another filter
        lambda: stub.ListMeasures(
            pb.ListMeasuresRequest(patient_id=patient_id, page_token=coded), metadata=me
        )
    )
    for forged in ("not-a-token", token[:-3], "eyJhZnRlciI6MX0"):
        _refused(
            lambda forged=forged: stub.ListGoals(  # type: ignore[misc]
                pb.ListGoalsRequest(patient_id=patient_id, page_token=forged), metadata=me
            )
        )
    _refused(
        lambda: stub.ListEpisodes(
            pb.ListEpisodesRequest(patient_id=patient_id, page_size=-1), metadata=me
        )
    )


def test_versions_are_listed_one_way_with_their_provenance_a_page_at_a_time(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    therapist = harness.metadata(settings, role="therapist", practitioner="th-1")
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=_rid(), fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=me,
    ).care_plan
    for version, title in ((1, "week 2"), (2, "week 3")):
        body = json.loads(plan.fhir_json) | {"title": title}
        plan = stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                id=plan.id,
                expected_version=version,
                fhir_json=json.dumps(body),
                reason=f"to {title}",
            ),
            metadata=therapist,
        ).care_plan

    def page(token: str) -> pb.ListResourceVersionsResponse:
        return stub.ListResourceVersions(
            pb.ListResourceVersionsRequest(
                resource_type="CarePlan", id=plan.id, page_size=2, page_token=token
            ),
            metadata=me,
        )

    first = page("")
    second = page(first.next_page_token)
    assert second.next_page_token == ""
    versions = [*first.versions, *second.versions]
    assert [(v.version, v.change, v.changed_by, v.reason) for v in versions] == [
        (3, "update", "Practitioner/th-1", "to week 3"),
        (2, "update", "Practitioner/th-1", "to week 2"),
        (1, "create", "Practitioner/psy-1", ""),
    ]
    assert json.loads(versions[0].fhir_json)["title"] == "week 3"
    one = stub.GetResourceVersion(
        pb.GetResourceVersionRequest(resource_type="CarePlan", id=plan.id, version=2),
        metadata=me,
    ).resource
    assert one.fhir_json == versions[1].fhir_json
    _refused(  # a token of one resource's history is not one of another's
        lambda: stub.ListResourceVersions(
            pb.ListResourceVersionsRequest(
                resource_type="CarePlan", id="another", page_token=first.next_page_token
            ),
            metadata=me,
        )
    )


def test_update_care_team_with_a_mask_changes_only_the_named_elements(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    cm = harness.metadata(settings, role="case-manager", practitioner="cm-1")
    patient_id = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient_id)
    before = stub.GetCareTeam(pb.GetCareTeamRequest(id=team_id), metadata=cm).care_team
    partial = {"resourceType": "CareTeam", "name": "IOP team B"}
    request = pb.UpdateCareTeamRequest(
        id=team_id,
        expected_version=1,
        fhir_json=json.dumps(partial),
        reason="renamed",
        request_id=_rid(),
    )
    request.update_mask.paths.append("name")
    after = stub.UpdateCareTeam(request, metadata=cm).care_team
    assert after.version == 2
    old, new = json.loads(before.fhir_json), json.loads(after.fhir_json)
    assert new["name"] == "IOP team B"
    assert new["participant"] == old["participant"] and new["subject"] == old["subject"]
    assert new["status"] == old["status"] == "active"

    for paths in (["subject"], ["nonsense"]):
        refused = pb.UpdateCareTeamRequest(
            id=team_id, expected_version=2, fhir_json=json.dumps(partial)
        )
        refused.update_mask.paths.extend(paths)
        _refused(lambda refused=refused: stub.UpdateCareTeam(refused, metadata=cm))  # type: ignore[misc]
    current = stub.GetCareTeam(pb.GetCareTeamRequest(id=team_id), metadata=cm).care_team
    assert current.version == 2  # nothing written by the refusals


def test_a_review_takes_its_day_as_a_google_type_date(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=_rid(), fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=me,
    ).care_plan
    attestation = pb.ReviewAttestation(practitioner_id="psy-1", role="psychiatrist", agrees=True)
    for bad in (date_pb2.Date(year=2026, month=13, day=1), date_pb2.Date(year=2026, month=11)):
        _refused(
            lambda bad=bad: stub.RecordPlanReview(  # type: ignore[misc]
                pb.RecordPlanReviewRequest(
                    id=plan.id,
                    expected_version=plan.version,
                    outcome="continue",
                    summary="ok",
                    attestations=[attestation],
                    reviewed_on=bad,
                ),
                metadata=me,
            )
        )
    reviewed = stub.RecordPlanReview(
        pb.RecordPlanReviewRequest(
            id=plan.id,
            expected_version=plan.version,
            outcome="continue",
            summary="Stable.",
            attestations=[attestation],
            reviewed_on=date_pb2.Date(year=2026, month=11, day=20),
            request_id=_rid(),
        ),
        metadata=me,
    ).care_plan
    resource = json.loads(reviewed.fhir_json)
    assert "Plan review 2026-11-20 (continue)" in resource["note"][-1]["text"]
    due = next(
        e["valueDate"]
        for e in resource["extension"]
        if e["url"] == "https://iopcare.org/fhir/StructureDefinition/next-review-due"
    )
    assert due == (date(2026, 11, 20) + timedelta(days=30)).isoformat()
