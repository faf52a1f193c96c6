"""Opaque page tokens (AIP-158): a keyset position, base64url-encoded JSON.

Keyset rather than offset paging: a thread that grows while a client pages through it never
repeats or skips an item.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from iopcare.kit.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(
            "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, fields: dict[str, type], field: str = "page_token") -> dict[str, Any] | None:
    """The position in a token this server issued, or InvalidArgument.

    `fields` names the keys and types the caller's tokens carry; a token that is not base64 JSON
    with exactly those is refused, so a forged or truncated token can never reach a query.
    """
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        value = None
    valid = (
        isinstance(value, dict)
        and set(value) == set(fields)
        and all(type(value[key]) is kind for key, kind in fields.items())
        # A forged number beyond what a database column holds (SQLite: 64-bit integers) would
        # reach the query and fail there as an internal error.
        and all(-(2**63) <= value[key] < 2**63 for key, kind in fields.items() if kind is int)
    )
    if not valid:
        raise InvalidArgument(
            f"{field} is not one this server issued",
            [FieldViolation(field, "invalid page token")],
        )
    return value  # type: ignore[no-any-return]
