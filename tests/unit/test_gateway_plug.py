"""Pure parts of the scheduling and notes handlers: date ranges pushed down to the services,
repeated parameters, and the 409 a full group or a double booking becomes."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from iopcare.gateway.errors import FhirHttpError, GrpcFailure, from_failure
from iopcare.gateway.search import SearchQuery, date_bounds, pairs_of


def test_repeated_date_parameters_make_one_range() -> None:
    query = SearchQuery(
        [("patient", "p1"), ("date", "ge2026-12-01"), ("date", "le2026-12-07"), ("status", "x")]
    )
    assert query["date"] == "le2026-12-07"  # the dict view keeps the last
    assert len([p for p in pairs_of(query) if p[0] == "date"]) == 2
    low, high = date_bounds(query, "date")
    assert low == datetime(2026, 12, 1, tzinfo=UTC)
    assert high == datetime(2026, 12, 8, tzinfo=UTC)  # le a day: up to its end
    low, high = date_bounds(SearchQuery([("start", "lt2026-12-01T10:00:00Z")]), "start")
    assert low is None and high == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert date_bounds({"date": "2026-12"}, "date") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert date_bounds({"date": "ne2026-12-01"}, "date") == (None, None)
    with pytest.raises(FhirHttpError) as caught:
        date_bounds({"date": "ge-tomorrow"}, "date")
    assert caught.value.status == 400


@pytest.mark.parametrize("reason", ["DOUBLE_BOOKED", "SESSION_FULL", "OUTSIDE_OPENING_HOURS"])
def test_booking_conflicts_are_409_with_the_services_message(reason: str) -> None:
    error = from_failure(
        GrpcFailure(grpc.StatusCode.FAILED_PRECONDITION, f"refused: {reason}", reason)
    )
    assert error.status == 409
    outcome = error.outcome()
    assert outcome["issue"][0]["code"] == "conflict"
    assert reason in outcome["issue"][0]["diagnostics"]
