"""Adolescent programs chosen by age (issue 13, part 3): the registered birth date, when careplan
has one, picks the program for the patient's age; without one, the diagnoses alone decide as
before (docs/templates.md, "How diagnoses select a template")."""

from __future__ import annotations

from typing import Any

import pytest

from iopcare.careplan.domain.templates import check_template, template_for
from iopcare.careplan.template_files import SHIPPED, load_templates
from iopcare.kit.errors import InvalidArgument

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("diagnosis", "others", "age", "template"),
    [
        # A 15-year-old: the adolescent programs, without the youth diagnoses standing in for age.
        ("F10.20", [], 15, "adolescent-sud-iop"),
        ("F32.1", [], 15, "adolescent-mood-iop"),
        ("F41.1", [], 16, "adolescent-mood-iop"),
        ("F10.20", ["F32.1"], 17, "adolescent-sud-iop"),
        # An adult: never an adolescent program, whatever the diagnoses.
        ("F12.20", ["F91.1"], 30, "adult-sud-iop"),
        ("F32.1", [], 18, "adult-mood-si-iop"),
        # No birth date registered: as before.
        ("F32.1", [], None, "adult-mood-si-iop"),
        ("F12.20", ["F91.1"], None, "adolescent-sud-iop"),
        ("F34.81", [], None, "adolescent-mood-iop"),
        # An age outside every range changes nothing for templates without one.
        ("F50.00", [], 15, "eating-disorder-iop"),
    ],
)
def test_the_age_picks_the_program(
    diagnosis: str, others: list[str], age: int | None, template: str
) -> None:
    assert template_for(load_templates(), diagnosis, others, age=age).id == template


def test_an_adult_with_a_youth_diagnosis_only_gets_the_general_plan() -> None:
    assert template_for(load_templates(), "F34.81", [], age=40).fallback


def _data(**changes: Any) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((SHIPPED / "adolescent-mood-iop.json").read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"age_range": [17, 12]}, "t.age_range"),
        ({"age_range": [12]}, "t.age_range"),
        ({"age_range": None, "age_diagnosis_prefixes": ["F32"]}, "t.age_diagnosis_prefixes"),
        ({"age_diagnosis_prefixes": [""]}, "t.age_diagnosis_prefixes"),
    ],
)
def test_a_wrong_age_rule_is_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_template(_data(**changes), "t")
    assert field in {v.field for v in exc.value.violations}
