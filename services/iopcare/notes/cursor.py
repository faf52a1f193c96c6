"""The positions notes' page and resume tokens carry: a `seq` of the thread or of the notes, or
(time, id) for the lists ordered by when their items were made (flags, consents, drafts)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from iopcare.kit import paging
from iopcare.kit.errors import FieldViolation, InvalidArgument

T = TypeVar("T")

#: seq columns are 64-bit (BigId): a token beyond that is not one this server issued, and SQLite
#: cannot even bind it (OverflowError, which surfaced as INTERNAL).
MAX_SEQ = 2**63 - 1


def _forged(field: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field} is not one this server issued", [FieldViolation(field, "invalid page token")]
    )


def seq_after(token: str, field: str = "page_token") -> int | None:
    """The seq a token names (None without a token), or INVALID_ARGUMENT naming `field`."""
    position = paging.decode(token, {"seq": int}, field)
    if position is None:
        return None
    seq = int(position["seq"])
    if not 0 <= seq <= MAX_SEQ:
        raise _forged(field)
    return seq


#: A keyset position in a list ordered by (time, id), both ascending.
Position = tuple[datetime, str]


def position_after(token: str) -> Position | None:
    """The (time, id) a page token names (None without a token), or INVALID_ARGUMENT."""
    found = paging.decode(token, {"at": str, "id": str})
    if found is None:
        return None
    try:
        at = datetime.fromisoformat(found["at"])
    except ValueError:
        raise _forged("page_token") from None
    if at.tzinfo is None or len(found["id"]) > 64:
        raise _forged("page_token")
    return at.astimezone(UTC), found["id"]


def after(at_column: Any, id_column: Any, position: Position | None) -> Any:
    """The SQL condition "after this position" in (time, id) order (True without one)."""
    if position is None:
        return at_column.is_not(None)
    at, ident = position
    return (at_column > at) | ((at_column == at) & (id_column > ident))


def page(items: list[T], size: int, key: Callable[[T], Position]) -> tuple[list[T], str]:
    """A page of at most `size` from `size + 1` items read in order, with the token of the next
    page (empty at the end)."""
    if len(items) <= size:
        return items, ""
    items = items[:size]
    at, ident = key(items[-1])
    return items, paging.encode({"at": at.astimezone(UTC).isoformat(), "id": ident})
