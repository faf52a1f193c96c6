"""Plan reviews: the team reviews each plan regularly, and at once after a crisis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from iopcare.careplan import codes
from iopcare.kit.errors import FieldViolations


@dataclass(frozen=True)
class Attestation:
    """One discipline's sign-off on a review: who, in which role, agreeing or not."""

    practitioner: str
    role: str
    agrees: bool
    comment: str = ""


@dataclass(frozen=True)
class Review:
    reviewed_on: date
    outcome: str
    summary: str
    attestations: list[Attestation]


def next_review_due(reviewed_on: date, interval_days: int) -> date:
    return reviewed_on + timedelta(days=interval_days)


def check_review(review: Review) -> None:
    """A review names its outcome, says what was decided, and carries every signer's attestation;
    a discipline may sign once."""
    problems = FieldViolations()
    if review.outcome not in codes.REVIEW_OUTCOMES:
        problems.add("outcome", f"one of {', '.join(sorted(codes.REVIEW_OUTCOMES))}")
    if not review.summary.strip() or len(review.summary) > 4000:
        problems.add("summary", "what the team decided, 1 to 4,000 characters")
    if not review.attestations:
        problems.add("attestations", "at least one discipline attests the review")
    roles = [a.role for a in review.attestations]
    for index, attestation in enumerate(review.attestations):
        if attestation.role not in codes.TEAM_ROLES:
            problems.add(f"attestations[{index}].role", "a care team role")
        if not attestation.practitioner:
            problems.add(f"attestations[{index}].practitioner", "the practitioner's id")
        if roles.count(attestation.role) > 1 and roles.index(attestation.role) != index:
            problems.add(f"attestations[{index}].role", "each discipline attests once")
    problems.raise_if_any("the review is incomplete")
