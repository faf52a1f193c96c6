"""SMART on FHIR scopes, v1 and v2, as pure functions.

v2 (`system/CarePlan.rs`, `user/Appointment.cruds`, `system/*.cruds`) names interactions by
letters: c(reate), r(ead, vread, history), u(pdate), d(elete), s(earch). v1
(`system/CarePlan.read`, `user/*.write`, `.*`) is read as v2: `read` = rs, `write` = cud, `*` =
cruds. A v2 scope's letters must be in that order with no repeats (SMART App Launch 2.0 §3.1.1);
anything else is ignored rather than guessed at, so a malformed scope never grants access.
Granular v2 scopes with a query (`system/Observation.rs?category=...`) are not supported and
grant nothing (refusing is safer than widening them to the whole type).

`system/` and `user/` scopes grant access to every patient the services let the caller see;
a `patient/` scope grants access to one patient only, the token's launch context (its `patient`
claim), and nothing without one.

One implementation for the gateway (REST) and the services (gRPC, `kit.rpc.AuthInterceptor`), so a
scope means the same on both edges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Interactions, by the SMART v2 letter that grants them.
CREATE, READ, UPDATE, DELETE, SEARCH = "c", "r", "u", "d", "s"
ORDER = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>.+)$")


@dataclass(frozen=True)
class Scope:
    """One parsed scope: `system/CarePlan.rs` is Scope("system", "CarePlan", "rs")."""

    context: str
    resource_type: str
    permissions: str

    def grants(self, resource_type: str, interaction: str) -> bool:
        return (
            self.context in ("system", "user")
            and self.resource_type in ("*", resource_type)
            and interaction in self.permissions
        )


def parse_scope(text: str) -> Scope | None:
    """One scope string, or None for anything that is not a resource scope we understand
    (`openid`, `launch/patient`, a v2 scope with a query, letters out of order)."""
    match = _SCOPE.match(text.strip())
    if match is None:
        return None
    perm = match["perm"]
    if perm in _V1:
        letters = _V1[perm]
    elif perm and _in_order(perm):
        letters = perm
    else:
        return None
    return Scope(match["context"], match["type"], letters)


def _in_order(perm: str) -> bool:
    positions = [ORDER.find(letter) for letter in perm]
    return -1 not in positions and positions == sorted(set(positions))


def parse_scopes(scopes: Iterable[str]) -> list[Scope]:
    """Every understood scope of a token (the `scope` claim, split on spaces)."""
    return [scope for scope in (parse_scope(s) for s in scopes) if scope is not None]


def allows(scopes: Iterable[Scope], resource_type: str, interaction: str) -> bool:
    """Whether any system/ or user/ scope grants `interaction` (a letter of `cruds`) on
    `resource_type` for every patient."""
    return any(scope.grants(resource_type, interaction) for scope in scopes)


ALL_PATIENTS = "*"


def patients_allowed(
    scopes: Iterable[Scope], resource_type: str, interaction: str, patient_context: str | None
) -> str | None:
    """Whose data the scopes open for `interaction` on `resource_type`: `ALL_PATIENTS`, the one
    patient of the launch context (granted by a `patient/` scope), or None (refused)."""
    scopes = list(scopes)
    if allows(scopes, resource_type, interaction):
        return ALL_PATIENTS
    if patient_context and any(
        s.context == "patient"
        and s.resource_type in ("*", resource_type)
        and interaction in s.permissions
        for s in scopes
    ):
        return patient_context
    return None


@dataclass(frozen=True)
class Rule:
    """What one RPC touches, as SMART scopes name it: a resource type and an interaction letter.

    `resource_type` may instead be read from the request (`type_field`, e.g. GetResourceVersion's
    `resource_type`); `also` lists further (type, letter) pairs the RPC needs (a composite view
    such as GetPatientPlan reads plans, teams, goals, sessions and messages at once).
    """

    resource_type: str
    interaction: str
    type_field: str | None = None
    also: tuple[tuple[str, str], ...] = ()

    def needs(self, request: Any) -> list[tuple[str, str]]:
        resource_type = self.resource_type
        if self.type_field is not None:
            resource_type = str(getattr(request, self.type_field, "") or "") or resource_type
        return [(resource_type, self.interaction), *self.also]


#: A service's declaration: RPC name (as in the proto) -> Rule.
Rules = dict[str, Rule]


def rule(resource_type: str, interaction: str, **kwargs: Any) -> Rule:
    return Rule(resource_type, interaction, **kwargs)


def grant(
    scopes: Iterable[Scope], needs: Iterable[tuple[str, str]], patient_context: str | None
) -> str | None:
    """Whose data the scopes open for all of `needs`: ALL_PATIENTS, the launch patient, or None."""
    allowed: str | None = ALL_PATIENTS
    scopes = list(scopes)
    for resource_type, interaction in needs:
        this = patients_allowed(scopes, resource_type, interaction, patient_context)
        if this is None:
            return None
        if this != ALL_PATIENTS:
            allowed = this
    return allowed
