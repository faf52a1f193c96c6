"""Idempotent creates: a request id names one request, not whatever is sent under it."""

from __future__ import annotations

from iopcare.kit.errors import FieldViolation, InvalidArgument


def require_same_request(same: bool) -> None:
    """A request id that ran before returns its first result only to a retry of that request.

    Why: `kit.requests.create_once` answers a known request id with the resource it created. If a
    client reuses an id for another request (another patient, another text), that answer would be
    a different resource presented as the result of this request, possibly about a patient the
    caller no longer sees; AIP-155 asks for an error instead.
    """
    if not same:
        raise InvalidArgument(
            "request_id was already used for a different request",
            [FieldViolation("request_id", "a new id for each new request; the same for a retry")],
        )
