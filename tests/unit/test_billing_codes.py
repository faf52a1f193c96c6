"""Billing codes of attended sessions (scheduling.domain.billing): pure rules."""

from __future__ import annotations

import pytest

from iopcare.scheduling.domain.billing import (
    CPT_SYSTEM,
    HCPCS_SYSTEM,
    Line,
    Session,
    billing_codes,
    day_units,
)


def codes(session: Session) -> list[str]:
    return [c.code for c in billing_codes(session)]


def test_a_psychiatric_programs_group_is_the_per_diem_day_and_group_therapy() -> None:
    found = billing_codes(Session("group", "group-therapy", 180))
    assert [(c.system, c.code) for c in found] == [
        (HCPCS_SYSTEM, "S9480"),
        (CPT_SYSTEM, "90853"),
    ]
    assert found[0].per_diem and not found[1].per_diem


def test_a_substance_use_programs_group_is_h0015() -> None:
    assert codes(Session("group", "group-therapy", 180, substance_use=True)) == [
        "H0015",
        "90853",
    ]


@pytest.mark.parametrize(
    ("minutes", "code"),
    [(15, None), (16, "90832"), (37, "90832"), (38, "90834"), (52, "90834"), (53, "90837")],
)
def test_individual_psychotherapy_by_minutes(minutes: int, code: str | None) -> None:
    assert codes(Session("individual", "individual-therapy", minutes)) == ([code] if code else [])


def test_family_therapy_with_the_patient_and_family_present() -> None:
    assert codes(Session("individual", "family-therapy", 50, family_present=True)) == ["90847"]
    # Nobody of the family came: the patient's own psychotherapy by its length.
    assert codes(Session("individual", "family-therapy", 50)) == ["90834"]


@pytest.mark.parametrize(
    ("minutes", "code"), [(19, None), (20, "99213"), (29, "99213"), (30, "99214")]
)
def test_medication_management_is_em_by_time(minutes: int, code: str | None) -> None:
    expected = [code] if code else []
    assert codes(Session("individual", "medication-management", minutes)) == expected
    # A psychiatrist's session with no therapy type is a medication visit too ...
    assert codes(Session("individual", "", minutes, rendering_role="psychiatrist")) == expected


def test_a_psychiatrists_psychotherapy_stays_psychotherapy() -> None:
    assert codes(
        Session("individual", "individual-therapy", 45, rendering_role="psychiatrist")
    ) == ["90834"]


def test_an_unknown_session_type_has_no_code() -> None:
    assert codes(Session("individual", "intake", 60)) == []


def test_a_per_diem_is_one_unit_per_patient_and_day() -> None:
    lines = [
        Line("e1", "p1", "2026-12-07", "S9480"),
        Line("e2", "p1", "2026-12-07", "S9480"),
        Line("e3", "p2", "2026-12-07", "S9480"),
        Line("e4", "p1", "2026-12-08", "S9480"),
        Line("e5", "p1", "2026-12-07", "90834"),
        Line("e6", "p1", "2026-12-07", ""),
    ]
    assert day_units(lines) == {"e1": 1, "e2": 0, "e3": 1, "e4": 1, "e5": 1, "e6": 0}
