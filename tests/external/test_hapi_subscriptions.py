"""Subscriptions seen from outside: fhirpy (a client nobody here wrote) subscribes and the test's
receiver gets the notifications; HAPI FHIR's validator (R4 core, offline) finds no error in the
Subscription, `$status`, `$events` and the notification Bundles the gateway sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhirpy import SyncFHIRClient

from tests.support import hapi, harness
from tests.support.gateway import Stack, practitioner_token, system_token
from tests.support.subscriptions import (
    Receiver,
    enrolled,
    focus_ids,
    new_plan,
    subscription,
    subscription_stack,
)

pytestmark = pytest.mark.integration


def without_profiles(value: Any) -> Any:
    if isinstance(value, dict):
        copy = {k: without_profiles(v) for k, v in value.items()}
        if isinstance(copy.get("meta"), dict):
            copy["meta"] = {k: v for k, v in copy["meta"].items() if k != "profile"}
            if not copy["meta"]:
                del copy["meta"]
        return copy
    if isinstance(value, list):
        return [without_profiles(v) for v in value]
    return value


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    with subscription_stack(tmp_path_factory, kafka_bootstrap, "external-subs") as running:
        yield running


def test_fhirpy_subscribes_and_hapi_finds_no_error(
    stack: Stack, hapi_jar: Path, tmp_path: Path
) -> None:
    token = system_token(stack.settings)
    receiver = Receiver()
    try:
        with (
            stack.client(token) as ehr,
            stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as program,
        ):
            patient_id, team_id = enrolled(ehr, program)
            client = SyncFHIRClient(stack.base_url, authorization=f"Bearer {token}")
            asked = subscription(receiver.url("/hook"), "full-resource", patient_id)
            created = client.resource(
                "Subscription", **{k: v for k, v in asked.items() if k != "resourceType"}
            )
            created.save()
            assert created.id and created["status"] == "requested"
            harness.eventually(
                lambda: (
                    client.reference("Subscription", created.id).to_resource()["status"] == "active"
                ),
                timeout=20,
            )
            plan_id = new_plan(ehr, patient_id, team_id)
            harness.eventually(lambda: len(receiver.bundles("/hook")) >= 2, timeout=30)
            assert focus_ids(receiver.bundles("/hook")[1:]) == [plan_id]
            kept: dict[str, Any] = {
                "subscription": ehr.get(f"/Subscription/{created.id}").json(),
                "status": ehr.get(f"/Subscription/{created.id}/$status").json(),
                "events": ehr.get(f"/Subscription/{created.id}/$events").json(),
                "search": ehr.get("/Subscription").json(),
                "metadata": ehr.get("/metadata").json(),
                "handshake": receiver.bundles("/hook")[0],
                "notification": receiver.bundles("/hook")[1],
            }
    finally:
        receiver.close()
    for name, body in kept.items():
        # The IG's package (hl7.fhir.uv.subscriptions-backport) cannot be fetched here (it is on
        # the FHIR package registry only), so HAPI validates against R4 core: the profile
        # claims are taken off the copies it checks (docs/conformance.md).
        (tmp_path / f"{name}.json").write_text(json.dumps(without_profiles(body), indent=1))
    report = hapi.validate(hapi_jar, [tmp_path])
    assert len(report.files) == len(kept), report.output[-2000:]
    assert not report.errors(), hapi.format_issues(report.errors())
    for issue in report.warnings():
        print(f"warning {issue.file}: {issue.message_id}")
