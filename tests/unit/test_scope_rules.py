"""Every RPC of every service declares what it touches in SMART terms (issue 10 item 5): an RPC
left out would be closed to scoped tokens, and a wrong declaration would open it too widely."""

from __future__ import annotations

import pytest

from iopcare.careplan import scope_rules as careplan_rules
from iopcare.careplan.v1 import careplan_service_pb2
from iopcare.kit import scopes
from iopcare.kit.access import PRIVILEGED_ROLES, access_basis
from iopcare.kit.errors import PermissionDenied
from iopcare.notes import scope_rules as notes_rules
from iopcare.notes.v1 import notes_service_pb2
from iopcare.scheduling import scope_rules as scheduling_rules
from iopcare.scheduling.v1 import scheduling_service_pb2

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("module", "rules", "service"),
    [
        (careplan_service_pb2, careplan_rules.SCOPE_RULES, "CarePlanService"),
        (scheduling_service_pb2, scheduling_rules.SCOPE_RULES, "SchedulingService"),
        (notes_service_pb2, notes_rules.SCOPE_RULES, "NotesService"),
    ],
)
def test_every_rpc_declares_its_resource_type_and_interaction(
    module: object, rules: scopes.Rules, service: str
) -> None:
    methods = {m.name for m in module.DESCRIPTOR.services_by_name[service].methods}  # type: ignore[attr-defined]
    assert set(rules) == methods
    for rule in rules.values():
        assert rule.interaction in scopes.ORDER and len(rule.interaction) == 1


def test_writes_are_never_declared_as_reads() -> None:
    rules = {
        **careplan_rules.SCOPE_RULES,
        **scheduling_rules.SCOPE_RULES,
        **notes_rules.SCOPE_RULES,
    }
    for name, rule in rules.items():
        if name.startswith(("Create", "Update", "Record", "Register", "Post", "Sign", "Book")):
            assert rule.interaction in "cu", name


def test_grant_pins_a_patient_scope_to_the_launch_patient_and_needs_every_part() -> None:
    parsed = scopes.parse_scopes(["patient/*.rs"])
    view = careplan_rules.SCOPE_RULES["GetPatientPlan"]
    assert scopes.grant(parsed, view.needs(None), "pat-a") == "pat-a"
    assert scopes.grant(parsed, view.needs(None), None) is None
    narrow = scopes.parse_scopes(["system/CarePlan.rs"])
    assert scopes.grant(narrow, view.needs(None), None) is None
    assert scopes.grant(scopes.parse_scopes(["system/*.read"]), [("Goal", "c")], None) is None
    assert scopes.grant(scopes.parse_scopes(["system/Goal.write"]), [("Goal", "c")], None) == "*"


def test_the_launch_context_binds_every_basis_and_system_is_not_a_program_role() -> None:
    assert "system" not in PRIVILEGED_ROLES
    with pytest.raises(PermissionDenied) as refused:
        access_basis("admin", False, True, patient_id="pat-b", patient_limit="pat-a")
    assert refused.value.reason == "OUTSIDE_LAUNCH_CONTEXT"
    assert access_basis("system", False, False, patient_id="pat-a", patient_limit="pat-a") == (
        "role:system"
    )
