"""The IOP stay: enrolment (EpisodeOfCare), its level of care, and the transitions between levels.

A behavioural-health program keeps two levels: the clinical level (what the team judges the
patient needs) and the authorized level (what the payer has approved); they differ while an
authorization is pending. The program itself is one level (IOP): moving the clinical level below
it is a step down (the stay ends, plans complete), above it a step up (the stay is put on hold,
plans suspended, until the patient returns or is discharged).
"""

from __future__ import annotations

from dataclasses import dataclass

from iopcare.careplan import codes
from iopcare.kit.errors import FailedPrecondition, FieldViolations


@dataclass(frozen=True)
class EpisodeState:
    status: str
    clinical_level: str | None
    authorized_level: str | None


@dataclass(frozen=True)
class Transition:
    """The result of a transition: the new state, its kind, and what happens to the plans."""

    state: EpisodeState
    kind: str
    #: "complete", "suspend", "resume" or None: applied to the patient's open care plans.
    plan_effect: str | None


def _rank(level: str) -> int:
    return codes.LEVELS_OF_CARE.index(level)


def check_level(level: str | None, field: str, problems: FieldViolations) -> None:
    if level is not None and level not in codes.LEVELS_OF_CARE:
        problems.add(field, f"one of {', '.join(codes.LEVELS_OF_CARE)}")


def admit(state: EpisodeState) -> Transition:
    if state.status not in {"planned", "waitlist"}:
        raise FailedPrecondition(
            f"only a planned or waitlisted episode can be admitted, not {state.status}",
            reason="EPISODE_NOT_PLANNED",
        )
    level = codes.PROGRAM_LEVEL
    return Transition(EpisodeState("active", level, state.authorized_level or level), "admit", None)


def change_level(state: EpisodeState, clinical: str, authorized: str | None) -> Transition:
    """A new clinical (and perhaps authorized) level: within IOP, a step down, or a step up."""
    problems = FieldViolations()
    check_level(clinical, "clinical_level", problems)
    check_level(authorized, "authorized_level", problems)
    problems.raise_if_any("unknown level of care")
    authorized = authorized or state.authorized_level
    if state.status == "onhold":
        if clinical != codes.PROGRAM_LEVEL:
            raise FailedPrecondition(
                "a stay on hold after a step up resumes only at the program's level, or ends "
                "with a discharge",
                reason="EPISODE_ON_HOLD",
            )
        return Transition(EpisodeState("active", clinical, authorized), "return", "resume")
    if state.status != "active":
        raise FailedPrecondition(
            f"the level of care of a {state.status} episode cannot change",
            reason="EPISODE_NOT_ACTIVE",
        )
    if clinical == codes.PROGRAM_LEVEL:
        return Transition(EpisodeState("active", clinical, authorized), "level-change", None)
    if _rank(clinical) < _rank(codes.PROGRAM_LEVEL):
        return Transition(EpisodeState("finished", clinical, authorized), "step-down", "complete")
    return Transition(EpisodeState("onhold", clinical, authorized), "step-up", "suspend")


def discharge(state: EpisodeState) -> Transition:
    if state.status in {"planned", "waitlist"}:
        # A stay that never began has no plan in force: cancelling it touches none.
        return Transition(
            EpisodeState("cancelled", state.clinical_level, state.authorized_level), "cancel", None
        )
    if state.status not in {"active", "onhold"}:
        raise FailedPrecondition(
            f"a {state.status} episode cannot be discharged", reason="EPISODE_CLOSED"
        )
    return Transition(
        EpisodeState("finished", state.clinical_level, state.authorized_level),
        "discharge",
        "complete",
    )
