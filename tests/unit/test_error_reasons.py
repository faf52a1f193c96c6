"""kit.errors: a kind directly below IopcareError is named after its class (`NotFound`:
`NOT_FOUND`); a subclass of a kind keeps its parent's reason unless it sets its own, so a new
subclass cannot change the reason clients branch on."""

from __future__ import annotations

from iopcare.kit.errors import (
    FailedPrecondition,
    IopcareError,
    NotFound,
    PermissionDenied,
    StaleVersion,
)


def test_a_direct_kind_is_named_after_its_class() -> None:
    assert NotFound.reason == "NOT_FOUND"
    assert PermissionDenied("no").reason == "PERMISSION_DENIED"

    class QuotaGone(IopcareError):
        pass

    assert QuotaGone.reason == "QUOTA_GONE"


def test_a_subclass_of_a_kind_keeps_its_parents_reason() -> None:
    class NotOnTheTeam(PermissionDenied):
        pass

    class NotOnTheTeamEither(NotOnTheTeam):
        pass

    assert NotOnTheTeam.reason == "PERMISSION_DENIED"
    assert NotOnTheTeam("no").reason == "PERMISSION_DENIED"
    assert NotOnTheTeamEither.reason == "PERMISSION_DENIED"

    class Own(PermissionDenied):
        reason = "OWN_REASON"

    assert Own.reason == "OWN_REASON"
    assert Own("no", reason="GIVEN").reason == "GIVEN"


def test_stale_version_keeps_the_reason_clients_branch_on() -> None:
    # gateway.errors maps FAILED_PRECONDITION + STALE_VERSION to HTTP 412.
    assert isinstance(StaleVersion("CarePlan/x", 1, 2), FailedPrecondition)
    assert StaleVersion("CarePlan/x", 1, 2).reason == "STALE_VERSION"
