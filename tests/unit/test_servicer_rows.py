"""kit.servicer: an RPC written as a table row calls its use case with the caller and the checked
request fields, and answers as a hand-written method would (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.kit.auth import Principal, reset_principal, set_principal
from iopcare.kit.errors import InvalidArgument, Unauthenticated
from iopcare.kit.servicer import creates, gets, lists, one, page, rpc, versioned

CALLER = Principal(subject="clinician-1", role="clinician", practitioner_id="p1")


@dataclass
class Page:
    items: list[str]
    next_page_token: str


class Plans:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> str:
        self.calls.append(("create", principal, request_id, fhir_json))
        return "plan-1"

    def get(self, principal: Principal, plan_id: str) -> str:
        self.calls.append(("get", principal, plan_id))
        return plan_id

    def listed(self, principal: Principal, patient_id: str, size: int, token: str) -> Page:
        self.calls.append(("list", principal, patient_id, size, token))
        return Page(["a", "b"], "next")


def plan(plan_id: str) -> pb.CarePlan:
    return pb.CarePlan(id=plan_id)


class Servicer:
    def __init__(self) -> None:
        self.plans = Plans()

    Create = creates(lambda s: s.plans.create, pb.CreateCarePlanResponse, "care_plan", plan)
    Get = gets(lambda s: s.plans.get, pb.GetCarePlanResponse, "care_plan", plan)
    List = lists(lambda s: s.plans.listed, pb.ListCarePlansResponse, "care_plans", plan)


@pytest.fixture
def caller() -> Iterator[Principal]:
    token = set_principal(CALLER)
    try:
        yield CALLER
    finally:
        reset_principal(token)


def test_rows_call_the_use_case_with_the_caller_and_build_the_response(caller: Principal) -> None:
    servicer = Servicer()
    created = servicer.Create(pb.CreateCarePlanRequest(request_id="r1", fhir_json="{}"), None)
    got = servicer.Get(pb.GetCarePlanRequest(id="plan-7"), None)
    listed = servicer.List(
        pb.ListCarePlansRequest(patient_id="pat-1", page_size=2, page_token="t"), None
    )
    assert created == pb.CreateCarePlanResponse(care_plan=pb.CarePlan(id="plan-1"))
    assert got.care_plan.id == "plan-7"
    assert [p.id for p in listed.care_plans] == ["a", "b"]
    assert listed.next_page_token == "next"
    assert servicer.plans.calls == [
        ("create", caller, "r1", "{}"),
        ("get", caller, "plan-7"),
        ("list", caller, "pat-1", 2, "t"),
    ]


def test_a_bad_id_is_invalid_argument_naming_the_field_and_never_reaches_the_use_case(
    caller: Principal,
) -> None:
    servicer = Servicer()
    with pytest.raises(InvalidArgument) as refused:
        servicer.List(pb.ListCarePlansRequest(patient_id="bad id!"), None)
    assert [v.field for v in refused.value.violations] == ["patient_id"]
    with pytest.raises(InvalidArgument):
        servicer.Get(pb.GetCarePlanRequest(id=""), None)
    assert servicer.plans.calls == []


def test_without_a_caller_a_row_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        Servicer().Get(pb.GetCarePlanRequest(id="plan-7"), None)


def test_a_page_is_a_tuple_or_an_object_with_items_and_a_token() -> None:
    respond = page(pb.ListCarePlansResponse, "care_plans", plan)
    from_tuple = respond((["x"], "t2"))
    from_object = respond(Page(["x"], "t2"))
    assert from_tuple == from_object
    assert [p.id for p in from_tuple.care_plans] == ["x"]
    assert from_tuple.next_page_token == "t2"


def test_versioned_and_rpc_rows(caller: Principal) -> None:
    seen: list[tuple[Any, ...]] = []
    handler = rpc(
        lambda s, r: seen.append(versioned(r)) or "plan-3",
        one(pb.UpdateCarePlanResponse, "care_plan", plan),
    )
    answer = handler(None, pb.UpdateCarePlanRequest(id="plan-3", expected_version=4), None)
    assert answer.care_plan.id == "plan-3"
    assert seen == [(caller, "plan-3", 4)]
