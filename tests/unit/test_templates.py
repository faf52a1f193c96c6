"""Program templates draft valid R4 plans for the diagnoses they cover."""

from __future__ import annotations

from datetime import date

import pytest

from iopcare.careplan.domain.templates import draft_plan, template_for
from iopcare.careplan.fhir_map import draft_from_fhir
from iopcare.careplan.template_files import load_templates
from iopcare.kit import fhir
from iopcare.kit.errors import FailedPrecondition


@pytest.mark.parametrize(
    ("diagnosis", "template"),
    [("F10.20", "adult-sud-iop"), ("f11.23", "adult-sud-iop"), ("F50.00", "eating-disorder-iop")],
)
def test_the_diagnosis_picks_the_template(diagnosis: str, template: str) -> None:
    assert template_for(load_templates(), diagnosis).id == template


def test_a_diagnosis_no_template_covers_is_refused() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        template_for(load_templates(), "J45.909")
    assert caught.value.reason == "NO_TEMPLATE"


@pytest.mark.parametrize("template", load_templates(), ids=lambda t: t.id)
def test_every_shipped_template_drafts_a_valid_plan_ready_once_a_team_is_named(template) -> None:  # type: ignore[no-untyped-def]
    plan = fhir.parse_resource(draft_plan(template, "p1", "F10.20", "t1", date(2026, 12, 1)))
    draft = draft_from_fhir(plan)
    assert draft.status == "draft"
    assert (draft.care_teams, draft.goals) == (1, len(template.goals))
    assert len(draft.activities) == len(template.activities)
    assert all(a.has_timing for a in draft.activities)
