"""Security labels (`meta.security`) only go up: the rules every service applies when it stores a
new version of a resource, or a resource derived from another.

- A new version keeps every label of the version it replaces (a PUT or an update RPC without
  `meta.security` must not turn a 42 CFR Part 2 record into an unlabelled one, and so release it).
  Only a privacy officer may take a label off, deliberately: role `PRIVACY_OFFICER_ROLE`.
- What a service derives from a labelled resource (a thread message about a plan, the sessions of
  its series, an attendance line) carries the source's labels, all of them (the strictest).
  42 CFR 2.32 and 2.12(d): the restrictions follow the information, wherever it is copied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from iopcare.kit import fhir

#: The role (token `role` claim) of the person who may lower or remove a resource's security
#: labels: the program's privacy officer (HIPAA 45 CFR 164.530(a)), nobody else. One constant so
#: that the services, the gateway and the token issuer agree on its name.
PRIVACY_OFFICER_ROLE = "privacy-officer"

Label = dict[str, Any]


def may_lower_labels(role: str) -> bool:
    return role == PRIVACY_OFFICER_ROLE


def _key(label: Label) -> tuple[Any, Any]:
    return label.get("system"), label.get("code")


def security_of(resource: Any) -> list[Label]:
    """The `meta.security` codings of a resource given as JSON text, a dict or an R4B model."""
    if isinstance(resource, str):
        resource = json.loads(resource)
    if isinstance(resource, dict):
        meta = resource.get("meta") or {}
        return [dict(s) for s in meta.get("security") or [] if isinstance(s, dict)]
    meta = getattr(resource, "meta", None)
    found = getattr(meta, "security", None) or [] if meta is not None else []
    return [s.model_dump(exclude_none=True, by_alias=True) for s in found]


def union(*label_lists: Iterable[Label]) -> list[Label]:
    """Every label of every list, each once, in first-seen order (the strictest combination)."""
    seen: dict[tuple[Any, Any], Label] = {}
    for labels in label_lists:
        for label in labels:
            seen.setdefault(_key(label), label)
    return list(seen.values())


def keep_labels(previous_json: str, revised_json: str) -> str:
    """`revised_json` carrying every label of `previous_json` it lacks (canonical JSON). Returns
    the revised text unchanged (no parse) when nothing is missing, the common case."""
    before = security_of(previous_json)
    if not before:
        return revised_json
    after = security_of(revised_json)
    have = {_key(s) for s in after}
    missing = [s for s in before if _key(s) not in have]
    if not missing:
        return revised_json
    return with_labels(revised_json, missing)


def with_labels(resource_json: str, labels: Iterable[Label]) -> str:
    """Canonical JSON of the resource with `labels` added to its `meta.security`."""
    data = json.loads(resource_json)
    meta = data.setdefault("meta", {})
    meta["security"] = union(meta.get("security") or [], labels)
    return fhir.to_json(fhir.parse_resource(data, data.get("resourceType")))
