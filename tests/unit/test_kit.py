"""Failpoints, page tokens and bearer tokens."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from iopcare.kit import auth, failpoints, paging
from iopcare.kit.errors import InvalidArgument, Unauthenticated
from iopcare.kit.settings import Settings


def test_an_unarmed_failpoint_does_nothing_and_an_armed_one_fires_the_given_times() -> None:
    failpoints.failpoint("after_publish_before_mark_sent")
    failpoints.arm("after_publish_before_mark_sent", "2*raise")
    for _ in range(2):
        with pytest.raises(failpoints.FailpointTriggered):
            failpoints.failpoint("after_publish_before_mark_sent")
    failpoints.failpoint("after_publish_before_mark_sent")


def test_failpoints_are_armed_from_the_environment_syntax() -> None:
    failpoints.load_from_env(
        "after_poll_before_effect=sleep(50); after_effect_before_offset_commit=raise"
    )
    started = time.monotonic()
    failpoints.failpoint("after_poll_before_effect")
    assert time.monotonic() - started >= 0.045
    with pytest.raises(failpoints.FailpointTriggered):
        failpoints.failpoint("after_effect_before_offset_commit")
    with pytest.raises(ValueError):
        failpoints.arm("x", "explode")


def test_page_tokens_round_trip_and_foreign_tokens_are_invalid_arguments() -> None:
    assert paging.decode(paging.encode({"seq": 7}), {"seq": int}) == {"seq": 7}
    assert paging.decode("", {"seq": int}) is None
    for forged in (
        "not-a-token!",
        "e30",
        paging.encode({"seq": "x"}),
        paging.encode({"a": 1}),
        paging.encode({"seq": 2**64}),
    ):
        with pytest.raises(InvalidArgument):
            paging.decode(forged, {"seq": int})
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(10**6) == paging.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        paging.page_size(-1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def test_a_minted_token_verifies_into_its_principal(settings: Settings) -> None:
    token = auth.mint_token(
        settings,
        subject="practitioner:t1",
        role="therapist",
        practitioner_id="t1",
        scopes=["user/CarePlan.rs"],
    )
    principal = auth.TokenVerifier(settings).verify(token)
    assert principal.role == "therapist"
    assert principal.reference == "Practitioner/t1"
    assert principal.scopes == frozenset({"user/CarePlan.rs"})


def _claims(settings: Settings, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": "x",
        "iat": now,
        "exp": now + 60,
        "role": "therapist",
    }
    claims.update(changes)
    return claims


def test_expired_foreign_unsigned_and_symmetric_tokens_are_refused(settings: Settings) -> None:
    verifier = auth.TokenVerifier(settings)
    private = auth.ensure_dev_keys(settings)[0].read_bytes()
    other = Settings(data_dir=settings.data_dir / "other")
    cases = [
        jwt.encode(_claims(settings, exp=int(time.time()) - 3600), private, algorithm="ES384"),
        jwt.encode(_claims(settings, aud="someone-else"), private, algorithm="ES384"),
        jwt.encode(_claims(settings, iss="https://evil.example"), private, algorithm="ES384"),
        jwt.encode(_claims(settings, role="janitor"), private, algorithm="ES384"),
        jwt.encode(
            _claims(settings), auth.ensure_dev_keys(other)[0].read_bytes(), algorithm="ES384"
        ),
        jwt.encode(_claims(settings), "a-shared-secret-that-is-long-enough!", algorithm="HS256"),
        jwt.encode(_claims(settings), None, algorithm="none"),
        "not.a.jwt",
    ]
    for token in cases:
        with pytest.raises(Unauthenticated):
            verifier.verify(token)


def test_an_audit_seal_covers_every_field_of_the_row() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from iopcare.kit import audit

    row = {
        "time": datetime(2026, 11, 27, 9, 30, 0, 123456, tzinfo=UTC),
        "principal": "practitioner:psy-1",
        "role": "psychiatrist",
        "action": "read",
        "resource": "CarePlan/1",
        "patient_id": "p-1",
        "outcome": "success",
        "detail": None,
    }
    key = b"k" * 32
    sealed = audit.seal(key, row)
    # The same instant read back in another offset, or naive from SQLite: the same seal.
    eastern = row["time"].astimezone(timezone(timedelta(hours=-5)))
    assert audit.seal(key, {**row, "time": eastern}) == sealed
    assert audit.seal(key, {**row, "time": row["time"].replace(tzinfo=None)}) == sealed
    for name, other in [
        ("time", row["time"] + timedelta(microseconds=1)),
        ("principal", "practitioner:x"),
        ("role", "admin"),
        ("action", "search"),
        ("resource", "CarePlan/2"),
        ("patient_id", "p-2"),
        ("outcome", "denied"),
        ("detail", ""),  # a missing detail is not an empty one
    ]:
        assert audit.seal(key, {**row, name: other}) != sealed, name
    assert audit.seal(b"x" * 32, row) != sealed


def test_a_remembered_token_is_refused_once_it_expires(tmp_path: Path) -> None:
    """Verified tokens are remembered (ADR 0014) only until they expire."""
    settings = Settings(data_dir=tmp_path, token_leeway_seconds=0)
    verifier = auth.TokenVerifier(settings)
    token = auth.mint_token(
        settings, subject="practitioner:t1", role="therapist", lifetime_seconds=2
    )
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # remembered: no second signature check
    time.sleep(2.2)
    with pytest.raises(Unauthenticated):
        verifier.verify(token)


def test_a_token_altered_after_a_remembered_one_is_checked_in_full(settings: Settings) -> None:
    verifier = auth.TokenVerifier(settings)
    token = auth.mint_token(settings, subject="practitioner:t1", role="therapist")
    verifier.verify(token)
    header, payload, signature = token.split(".")
    forged = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b"therapist", b"psychiatrist")
    ).decode()
    with pytest.raises(Unauthenticated):
        verifier.verify(f"{header}.{forged}.{signature}")
