"""SMART scopes: the gateway uses the kit's one implementation (`iopcare.kit.scopes`), which the
services apply to the same tokens over gRPC."""

from __future__ import annotations

from iopcare.kit.scopes import (
    ALL_PATIENTS,
    CREATE,
    DELETE,
    ORDER,
    READ,
    SEARCH,
    UPDATE,
    Scope,
    allows,
    parse_scope,
    parse_scopes,
    patients_allowed,
)

__all__ = [
    "ALL_PATIENTS",
    "CREATE",
    "DELETE",
    "ORDER",
    "READ",
    "SEARCH",
    "UPDATE",
    "Scope",
    "allows",
    "parse_scope",
    "parse_scopes",
    "patients_allowed",
]
