"""Copying the fields two records share by name (a stored row and its message, a request and the
input of its use case), so that a mapping writes out only what it computes."""

from __future__ import annotations

from typing import Any


def by_name(source: object, names: str) -> dict[str, Any]:
    """`source`'s attributes `names` (space-separated) as keyword arguments of the same names."""
    return {name: getattr(source, name) for name in names.split()}
