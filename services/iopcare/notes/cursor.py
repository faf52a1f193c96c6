"""The positions notes' page and resume tokens carry: a `seq` of the thread or of the notes."""

from __future__ import annotations

from iopcare.kit import paging
from iopcare.kit.errors import FieldViolation, InvalidArgument

#: seq columns are 64-bit (BigId): a token beyond that is not one this server issued, and SQLite
#: cannot even bind it (OverflowError, which surfaced as INTERNAL).
MAX_SEQ = 2**63 - 1


def seq_after(token: str, field: str = "page_token") -> int | None:
    """The seq a token names (None without a token), or INVALID_ARGUMENT naming `field`."""
    position = paging.decode(token, {"seq": int}, field)
    if position is None:
        return None
    seq = int(position["seq"])
    if not 0 <= seq <= MAX_SEQ:
        raise InvalidArgument(
            f"{field} is not one this server issued",
            [FieldViolation(field, "invalid page token")],
        )
    return seq
