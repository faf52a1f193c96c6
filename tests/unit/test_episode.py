"""The IOP stay's transitions and what they do to the plans."""

from __future__ import annotations

import pytest

from iopcare.careplan.domain.episode import EpisodeState, admit, change_level, discharge
from iopcare.kit.errors import FailedPrecondition, InvalidArgument

PLANNED = EpisodeState("planned", None, None)
ACTIVE = EpisodeState("active", "iop", "iop")


def test_admission_starts_the_stay_at_the_programs_level() -> None:
    transition = admit(PLANNED)
    assert transition.state == ACTIVE
    assert transition.kind == "admit"
    with pytest.raises(FailedPrecondition):
        admit(ACTIVE)


@pytest.mark.parametrize(
    ("clinical", "status", "kind", "effect"),
    [
        ("iop", "active", "level-change", None),
        ("outpatient", "finished", "step-down", "complete"),
        ("php", "onhold", "step-up", "suspend"),
        ("inpatient", "onhold", "step-up", "suspend"),
    ],
)
def test_a_new_clinical_level_is_a_revision_a_step_down_or_a_step_up(
    clinical: str, status: str, kind: str, effect: str | None
) -> None:
    transition = change_level(ACTIVE, clinical, None)
    assert (transition.state.status, transition.kind, transition.plan_effect) == (
        status,
        kind,
        effect,
    )
    assert transition.state.authorized_level == "iop"  # kept until the payer says otherwise


def test_after_a_step_up_the_patient_returns_at_the_programs_level_or_is_discharged() -> None:
    held = change_level(ACTIVE, "php", "php").state
    back = change_level(held, "iop", None)
    assert (back.state.status, back.kind, back.plan_effect) == ("active", "return", "resume")
    with pytest.raises(FailedPrecondition):
        change_level(held, "residential", None)
    assert discharge(held).state.status == "finished"


def test_unknown_levels_and_closed_stays_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        change_level(ACTIVE, "spa", None)
    finished = discharge(ACTIVE).state
    with pytest.raises(FailedPrecondition):
        discharge(finished)
    with pytest.raises(FailedPrecondition):
        change_level(finished, "iop", None)


def test_discharging_a_planned_stay_cancels_it_and_touches_no_plan() -> None:
    transition = discharge(PLANNED)
    assert (transition.state.status, transition.plan_effect) == ("cancelled", None)
