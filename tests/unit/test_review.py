"""Plan reviews: what a complete review is, and when the next one is due."""

from __future__ import annotations

from datetime import date

import pytest

from iopcare.careplan.domain.review import Attestation, Review, check_review, next_review_due
from iopcare.kit.errors import InvalidArgument


def _review(**changes: object) -> Review:
    values: dict[str, object] = {
        "reviewed_on": date(2026, 11, 27),
        "outcome": "continue",
        "summary": "PHQ-9 improving; keep the plan.",
        "attestations": [
            Attestation("psy-1", "psychiatrist", True),
            Attestation("th-1", "therapist", True, "group attendance good"),
        ],
    }
    values.update(changes)
    return Review(**values)  # type: ignore[arg-type]


def test_the_next_review_is_the_programs_interval_after_this_one() -> None:
    assert next_review_due(date(2026, 11, 27), 30) == date(2026, 12, 27)


def test_a_complete_review_passes() -> None:
    check_review(_review())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"outcome": "shrug"}, "outcome"),
        ({"summary": "  "}, "summary"),
        ({"attestations": []}, "attestations"),
        ({"attestations": [Attestation("x", "wizard", True)]}, "attestations[0].role"),
        (
            {
                "attestations": [
                    Attestation("a", "therapist", True),
                    Attestation("b", "therapist", True),
                ]
            },
            "attestations[1].role",
        ),
    ],
)
def test_incomplete_reviews_are_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_review(_review(**changes))
    assert field in [v.field for v in caught.value.violations]
