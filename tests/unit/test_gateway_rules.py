"""The gateway's pure rules: SMART scopes, routing, error mapping, bundle references, search
matching, _summary and the CapabilityStatement generated from the handler registry."""

from __future__ import annotations

import json

import grpc
import pytest

from iopcare.gateway import capability, registry, routing
from iopcare.gateway.bundles import Entry, processing_order, resolve
from iopcare.gateway.errors import FhirHttpError, GrpcFailure, from_failure
from iopcare.gateway.handoff import bundle_key, labels_of, request_id
from iopcare.gateway.scopes import (
    ALL_PATIENTS,
    allows,
    parse_scope,
    parse_scopes,
    patients_allowed,
)
from iopcare.gateway.search import DATE, TOKEN, SearchParam, matches
from iopcare.gateway.summary import summarise

# -- scopes --------------------------------------------------------------------------------


def test_v2_scope_grants_exactly_its_letters() -> None:
    scopes = parse_scopes(["system/CarePlan.rs"])
    assert allows(scopes, "CarePlan", "r")
    assert allows(scopes, "CarePlan", "s")
    assert not allows(scopes, "CarePlan", "c")
    assert not allows(scopes, "CarePlan", "u")
    assert not allows(scopes, "Goal", "r")


def test_user_scope_with_every_letter_and_wildcard_type() -> None:
    scopes = parse_scopes(["user/Appointment.cruds", "system/*.r"])
    assert all(allows(scopes, "Appointment", letter) for letter in "cruds")
    assert allows(scopes, "Goal", "r")
    assert not allows(scopes, "Goal", "s")


def test_v1_scopes_read_as_v2() -> None:
    assert parse_scope("system/CarePlan.read") == parse_scope("system/CarePlan.rs")
    assert parse_scope("user/*.write") is not None
    write = parse_scopes(["user/*.write"])
    assert allows(write, "Goal", "c") and allows(write, "Goal", "u")
    assert not allows(write, "Goal", "r")
    assert all(allows(parse_scopes(["system/*.*"]), "Flag", x) for x in "cruds")


@pytest.mark.parametrize(
    "text",
    [
        "system/CarePlan.sr",  # letters out of order
        "system/CarePlan.rr",  # repeated
        "system/CarePlan.x",
        "system/CarePlan.rs?category=x",  # granular scopes are not widened to the whole type
        "openid",
        "launch/patient",
        "system/carePlan.rs",
        "",
    ],
)
def test_malformed_or_unsupported_scopes_grant_nothing(text: str) -> None:
    assert parse_scope(text) is None


def test_patient_scopes_grant_one_patient_and_only_with_a_launch_context() -> None:
    scopes = parse_scopes(["patient/CarePlan.rs"])
    assert scopes and not allows(scopes, "CarePlan", "r")
    assert patients_allowed(scopes, "CarePlan", "r", None) is None
    assert patients_allowed(scopes, "CarePlan", "r", "p1") == "p1"
    assert patients_allowed(scopes, "CarePlan", "c", "p1") is None
    assert patients_allowed(scopes, "Goal", "r", "p1") is None
    both = parse_scopes(["patient/*.rs", "system/Goal.rs"])
    assert patients_allowed(both, "Goal", "r", "p1") == ALL_PATIENTS
    assert patients_allowed(both, "CarePlan", "s", "p1") == "p1"


# -- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "metadata", routing.Route(routing.METADATA)),
        ("POST", "", routing.Route(routing.BUNDLE)),
        ("POST", "$handoff", routing.Route(routing.HANDOFF)),
        ("GET", "CarePlan", routing.Route(routing.SEARCH, "CarePlan")),
        ("POST", "CarePlan/_search", routing.Route(routing.SEARCH, "CarePlan")),
        ("POST", "CarePlan", routing.Route(routing.CREATE, "CarePlan")),
        ("GET", "CarePlan/a-1", routing.Route(routing.READ, "CarePlan", "a-1")),
        ("PUT", "CarePlan/a-1", routing.Route(routing.UPDATE, "CarePlan", "a-1")),
        ("GET", "CarePlan/a-1/_history", routing.Route(routing.HISTORY, "CarePlan", "a-1")),
        ("GET", "CarePlan/a-1/_history/3", routing.Route(routing.VREAD, "CarePlan", "a-1", 3)),
        ("GET", "Patient/p/$everything", routing.Route(routing.EVERYTHING, "Patient", "p")),
    ],
)
def test_routes(method: str, path: str, expected: routing.Route) -> None:
    assert routing.route(method, path) == expected


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("DELETE", "CarePlan/a", 405),
        ("PATCH", "CarePlan/a", 405),
        ("GET", "", 405),
        ("PUT", "metadata", 405),
        ("GET", "CarePlan/a/_history/x", 400),
        ("GET", "CarePlan/a/_history/0", 400),
        ("GET", "CarePlan/" + "x" * 65, 400),
        ("GET", "CarePlan/a%20b", 400),
        ("GET", "carePlan/a", 404),
        ("GET", "CarePlan/a/b/c/d/e", 404),
        ("GET", "CarePlan/_history", 404),
    ],
)
def test_malformed_routes_are_refused_with_the_right_status(
    method: str, path: str, status: int
) -> None:
    with pytest.raises(FhirHttpError) as refused:
        routing.route(method, path)
    assert refused.value.status == status
    assert refused.value.outcome()["resourceType"] == "OperationOutcome"


# -- gRPC status to HTTP -------------------------------------------------------------------


def test_stale_version_is_412_with_the_current_etag() -> None:
    error = from_failure(
        GrpcFailure(
            grpc.StatusCode.FAILED_PRECONDITION,
            "CarePlan/x is at version 3, not 2",
            "STALE_VERSION",
            (("current_version", "3"),),
        )
    )
    assert error.status == 412
    assert error.headers["ETag"] == 'W/"3"'


def test_invalid_argument_is_422_with_element_paths() -> None:
    error = from_failure(
        GrpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the CarePlan cannot be created",
            "INVALID_ARGUMENT",
            (),
            (("fhir_json.CarePlan.subject", "must reference a Patient"),),
        )
    )
    assert error.status == 422
    issue = error.outcome()["issue"][1]
    assert issue["expression"] == ["CarePlan.subject"]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.UNKNOWN, 502),
    ],
)
def test_grpc_codes_map_to_http(code: grpc.StatusCode, status: int) -> None:
    error = from_failure(GrpcFailure(code, "secret detail of a crash"))
    assert error.status == status
    if status == 502:
        # A service's internal failure never leaks its message through the gateway.
        assert "secret" not in str(error.outcome())


# -- bundles -------------------------------------------------------------------------------


def _entry(index: int, full_url: str, resource: dict[str, object]) -> Entry:
    return Entry(index, full_url, "POST", str(resource["resourceType"]), resource)


def test_entries_are_processed_after_the_entries_they_reference() -> None:
    plan = _entry(
        0,
        "urn:uuid:plan",
        {"resourceType": "CarePlan", "subject": {"reference": "urn:uuid:patient"}},
    )
    patient = _entry(1, "urn:uuid:patient", {"resourceType": "Patient"})
    goal = _entry(2, "urn:uuid:goal", {"resourceType": "Goal"})
    assert [e.index for e in processing_order([plan, patient, goal])] == [1, 2, 0]


def test_a_reference_cycle_is_refused() -> None:
    a = _entry(0, "urn:uuid:a", {"resourceType": "Goal", "x": {"reference": "urn:uuid:b"}})
    b = _entry(1, "urn:uuid:b", {"resourceType": "Goal", "x": {"reference": "urn:uuid:a"}})
    with pytest.raises(FhirHttpError) as refused:
        processing_order([a, b])
    assert refused.value.status == 400


def test_urn_uuid_references_are_rewritten_deeply_and_others_left_alone() -> None:
    resource = {
        "resourceType": "CarePlan",
        "subject": {"reference": "urn:uuid:p"},
        "activity": [{"detail": {"performer": [{"reference": "urn:uuid:p"}]}}],
        "careTeam": [{"reference": "CareTeam/t1"}],
    }
    resolved = resolve(resource, {"urn:uuid:p": "Patient/42"})
    assert resolved["subject"]["reference"] == "Patient/42"
    assert resolved["activity"][0]["detail"]["performer"][0]["reference"] == "Patient/42"
    assert resolved["careTeam"][0]["reference"] == "CareTeam/t1"
    assert resource["subject"]["reference"] == "urn:uuid:p"  # the input is not changed


# -- handoff keys and labels ---------------------------------------------------------------


def test_bundle_key_prefers_the_identifier_and_otherwise_hashes_the_content() -> None:
    with_id = {"resourceType": "Bundle", "identifier": {"system": "s", "value": "v"}}
    assert bundle_key(with_id) == "id:s|v"
    a = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"a": 1}}]}
    b = {"entry": [{"resource": {"a": 1}}], "type": "collection", "resourceType": "Bundle"}
    assert bundle_key(a) == bundle_key(b)  # key order does not matter
    assert bundle_key(a) != bundle_key({**a, "type": "document"})
    assert request_id(bundle_key(a), "plan") != request_id(bundle_key(a), "episode")


def test_labels_are_the_union_of_the_sources() -> None:
    sud = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"}
    r = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    labels = labels_of(
        [{"meta": {"security": [sud]}}, {"meta": {"security": [r, sud]}}, {"id": "x"}]
    )
    assert labels == [sud, r]


# -- search --------------------------------------------------------------------------------

STATUS = SearchParam("status", TOKEN, ("status",))
CATEGORY = SearchParam("category", TOKEN, ("category",))
DATE_PARAM = SearchParam("date", DATE, ("period",))
PLAN = {
    "status": "active",
    "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "736378000"}]}],
    "period": {"start": "2026-03-01", "end": "2026-05-31"},
}


def test_token_search() -> None:
    assert matches(PLAN, STATUS, "active")
    assert matches(PLAN, STATUS, "draft,active")
    assert not matches(PLAN, STATUS, "draft")
    assert matches(PLAN, CATEGORY, "http://snomed.info/sct|736378000")
    assert matches(PLAN, CATEGORY, "736378000")
    assert not matches(PLAN, CATEGORY, "http://loinc.org|736378000")


def test_date_search_with_prefixes() -> None:
    assert matches(PLAN, DATE_PARAM, "2026-04")
    assert matches(PLAN, DATE_PARAM, "ge2026-05-15")
    assert not matches(PLAN, DATE_PARAM, "gt2026-06-01")
    assert matches(PLAN, DATE_PARAM, "lt2026-03-02")
    assert not matches(PLAN, DATE_PARAM, "lt2026-03-01")
    assert not matches(PLAN, DATE_PARAM, "2027")
    with pytest.raises(FhirHttpError) as refused:
        matches(PLAN, DATE_PARAM, "yesterday")
    assert refused.value.status == 400


def test_summary_keeps_summary_elements_and_marks_the_result_subsetted() -> None:
    plan = {
        "resourceType": "CarePlan",
        "id": "p",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/1"},
        "activity": [{"detail": {"status": "scheduled"}}],
        "text": {"status": "generated", "div": "<div>x</div>"},
    }
    summary = summarise(plan, "true")
    assert {"status", "intent", "subject", "id"} <= set(summary)
    assert "activity" not in summary and "text" not in summary
    assert summary["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert "text" not in summarise(plan, "data") and "activity" in summarise(plan, "data")
    assert set(summarise(plan, "text")) == {"resourceType", "id", "text", "meta"}


# -- the CapabilityStatement ---------------------------------------------------------------


def test_capability_statement_lists_what_the_handlers_implement() -> None:
    statement = capability.capability_statement("http://x/fhir", 1024, "test")
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    listed = {r["type"]: {i["code"] for i in r["interaction"]} for r in rest["resource"]}
    assert set(listed) == set(registry.BY_TYPE)
    for handler in registry.HANDLERS:
        assert listed[handler.type] == set(handler.interactions())
    assert listed["CarePlan"] >= {"read", "vread", "history-instance", "create", "update"}
    assert "update" not in listed["Goal"]  # careplan has no Goal update RPC
    assert listed["Appointment"] == {"read", "vread", "create", "update", "search-type"}
    # Free slots are computed, with no id to read them by.
    assert listed["Slot"] == {"search-type"}
    assert listed["Consent"] == {"read", "create", "update", "search-type"}
    assert listed["RelatedPerson"] == {"read", "create", "search-type"}
    assert listed["Coverage"] == {"read", "create", "search-type"}
    assert listed["ClaimResponse"] == {"read", "create", "search-type"}
    assert "refused" in rest["interaction"][1]["documentation"]


def test_labelled_content_is_withheld_even_when_only_a_contained_resource_carries_the_label() -> (
    None
):
    from iopcare.gateway.disclosure import may_carry_labels, withheld_reason

    sud = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}
    plan = {
        "resourceType": "CarePlan",
        "contained": [{"resourceType": "Condition", "meta": {"security": [sud]}}],
    }
    assert withheld_reason(plan) is not None
    assert may_carry_labels(json.dumps(plan))
    # Confidentiality R (restricted) on its own needs consent to leave too (issue 10, defect 11);
    # an "R" of another code system is not a confidentiality code.
    assert (
        withheld_reason({"resourceType": "CarePlan", "meta": {"security": [{"code": "R"}]}})
        is not None
    )
    other = {"system": "http://example.org/codes", "code": "R"}
    assert withheld_reason({"resourceType": "CarePlan", "meta": {"security": [other]}}) is None
    assert withheld_reason({"resourceType": "CarePlan"}) is None
