"""Small conversions shared by the servicers."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from iopcare.kit.errors import FieldViolation, InvalidArgument

MAX_ID_LENGTH = 64


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def require_id(value: str, field: str) -> str:
    """A logical id as FHIR allows them: 1-64 of [A-Za-z0-9-.]."""
    if not value or len(value) > MAX_ID_LENGTH or not all(c.isalnum() or c in "-." for c in value):
        raise InvalidArgument(
            f"{field} is not a valid id",
            [FieldViolation(field, "1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")],
        )
    return value
