"""Copying the fields two records share by name (a stored row and its message, a request and the
input of its use case), so that a mapping writes out only what it computes."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def by_name(source: object, names: str, *, none_as: object = None) -> dict[str, Any]:
    """`source`'s attributes `names` (space-separated) as keyword arguments of the same names;
    with `none_as`, an attribute that is None is given as that instead (proto3 has no null)."""
    values = {name: getattr(source, name) for name in names.split()}
    if none_as is None:
        return values
    return {name: none_as if value is None else value for name, value in values.items()}


def from_row(cls: type[R], row: Any, **computed: Any) -> R:
    """A stored record (a dataclass) read from a row whose columns bear its field names: each
    field is its column as read, but those `computed` gives (times made aware, JSON parsed)."""
    taken = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in computed}
    return cls(**taken, **computed)
