"""Building blocks of the scheduling tests: calendars, local times, error details."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from google.type import date_pb2
from grpc_status import rpc_status

from iopcare.kit.settings import Settings
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc

ALL_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def admin(settings: Settings) -> list[tuple[str, str]]:
    """An administrator's call metadata (sees every patient, audited as role:admin)."""
    from iopcare.kit import auth
    from iopcare.kit.rpc import bearer

    return bearer(auth.mint_token(settings, subject="admin:ops", role="admin"))


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def gdate(day: date) -> date_pb2.Date:
    """A day as the API's google.type.Date."""
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def local(day: date, at: time, zone: str = "America/New_York") -> datetime:
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def future_monday(weeks_ahead: int = 2) -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks_ahead)


def hours(
    days: tuple[str, ...] = ALL_WEEK, opens: str = "08:00", closes: str = "18:00"
) -> list[Any]:
    return [sc.OpeningHours(day_of_week=d, opens=opens, closes=closes) for d in days]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _create_schedule(stub: Any, settings: Settings, schedule: sc.Schedule) -> Any:
    request = sc.CreateScheduleRequest(request_id=str(uuid.uuid4()), schedule=schedule)
    return stub.CreateSchedule(request, metadata=admin(settings), timeout=10).schedule


def practitioner_schedule(
    stub: Any, settings: Settings, practitioner: str, role: str = "therapist", **kwargs: Any
) -> Any:
    return _create_schedule(
        stub,
        settings,
        sc.Schedule(
            actor=f"Practitioner/{practitioner}",
            kind="practitioner",
            role=role,
            service_types=kwargs.pop("service_types", ["individual-therapy"]),
            opening_hours=kwargs.pop("opening_hours", hours()),
            **kwargs,
        ),
    )


def room_schedule(stub: Any, settings: Settings, room: str, capacity: int, **kwargs: Any) -> Any:
    return _create_schedule(
        stub,
        settings,
        sc.Schedule(
            actor=f"Location/{room}",
            kind="room",
            capacity=capacity,
            service_types=kwargs.pop("service_types", ["group-therapy"]),
            opening_hours=kwargs.pop("opening_hours", hours()),
            **kwargs,
        ),
    )


def details(error: grpc.RpcError) -> tuple[str, list[str]]:
    """(ErrorInfo reason, BadRequest field paths) of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return info.reason, fields


def outcome(call: Any) -> tuple[str, str]:
    """(status code name, ErrorInfo reason) of a call; ("OK", "") when it succeeded."""
    try:
        call()
    except grpc.RpcError as exc:
        reason, _ = details(exc)
        return exc.code().name, reason
    return "OK", ""
