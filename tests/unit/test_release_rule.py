"""The gateway's release rule and the response writer's guard (issue 10, defect 3): nothing
leaves that did not pass `ReleaseRule.release` in the same request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iopcare.gateway import release
from iopcare.gateway.client import Caller
from iopcare.gateway.resources.base import Found
from iopcare.kit.auth import Principal

pytestmark = pytest.mark.unit

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def caller(role: str = "system") -> Caller:
    principal = Principal(subject="system:outside-ehr", role=role)
    return Caller(principal=principal, token="t", scopes=(), patient=None)


def plan(*labels: dict[str, str]) -> Found:
    resource: dict[str, Any] = {"resourceType": "CarePlan", "id": "p1", "status": "active"}
    if labels:
        resource["meta"] = {"versionId": "1", "security": list(labels)}
    return Found("p1", 1, "pat-1", None, json.dumps(resource))


def no_consents(_caller: Caller, _patient: str) -> list[Any]:
    return []


@pytest.mark.parametrize(
    "label",
    [
        {"system": ACT_CODE, "code": "ETH"},
        {"system": ACT_CODE, "code": "OPIOIDUD"},
        {"system": CONFIDENTIALITY, "code": "R"},
        {"system": CONFIDENTIALITY, "code": "V"},
    ],
    ids=["ETH", "OPIOIDUD", "R", "V"],
)
def test_labelled_content_without_consent_is_withheld(label: dict[str, str]) -> None:
    with release.request_scope():
        kept, withheld = release.ReleaseRule(no_consents).release(caller(), [plan(label)])
    assert kept == [] and withheld == 1


def test_the_writer_refuses_a_resource_the_rule_did_not_release() -> None:
    rule = release.ReleaseRule(no_consents)
    with release.request_scope():
        item = plan()
        with pytest.raises(release.UnreleasedContent):
            release.emit(item)
        with pytest.raises(release.UnreleasedContent):
            release.check_egress(item.json)
        with pytest.raises(release.UnreleasedContent):
            release.check_egress(
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [{"resource": {**item.resource}}],
                }
            )
        (kept,), _ = rule.release(caller(), [item])
        body = release.emit(kept)
        release.check_egress(body)
        bundle = {
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [
                {"resource": release.carry(body, json.loads(body))},
                {"response": {"outcome": {"resourceType": "OperationOutcome", "issue": []}}},
            ],
        }
        release.check_egress(bundle)
        release.check_egress({"resourceType": "OperationOutcome", "issue": []})


def test_a_ledger_is_per_request() -> None:
    rule = release.ReleaseRule(no_consents)
    with release.request_scope():
        (kept,), _ = rule.release(caller(), [plan()])
        body = release.emit(kept)
    with release.request_scope(), pytest.raises(release.UnreleasedContent):
        release.check_egress(body)
