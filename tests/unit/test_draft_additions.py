"""DraftCarePlan's additions (used by the gateway's $handoff): appended, labelled, nothing else."""

from __future__ import annotations

import pytest

from iopcare.careplan.domain.templates import with_additions
from iopcare.kit.errors import InvalidArgument

PLAN = {
    "resourceType": "CarePlan",
    "contained": [{"resourceType": "Goal", "id": "goal0"}],
    "status": "draft",
    "intent": "plan",
}
SUD = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}


def test_additions_are_appended_and_labels_set() -> None:
    plan = with_additions(
        PLAN,
        {
            "resourceType": "CarePlan",
            "contained": [{"resourceType": "Condition", "id": "cond0"}],
            "addresses": [{"reference": "#cond0"}],
            "supportingInfo": [{"reference": "EpisodeOfCare/e1"}],
            "meta": {"security": [SUD]},
        },
    )
    assert [c["id"] for c in plan["contained"]] == ["goal0", "cond0"]
    assert plan["addresses"] == [{"reference": "#cond0"}]
    assert plan["meta"]["security"] == [SUD]
    assert PLAN["contained"] == [{"resourceType": "Goal", "id": "goal0"}]  # input untouched


@pytest.mark.parametrize(
    "additions",
    [
        {"status": "active"},
        {"activity": []},
        {"meta": {"versionId": "7"}},
        {"resourceType": "Goal"},
        {"contained": {"resourceType": "Condition"}},
    ],
)
def test_anything_else_is_refused(additions: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        with_additions(PLAN, additions)
