"""Codes of FHIR's required bindings, checked on what comes in.

The fhir.resources models list the codes of a required binding (`enum_values`: Patient.gender,
ContactPoint.system, Identifier.use, HumanName.use, ...) but do not check them, so
`"gender": "femalex"` was stored and then served, and HAPI's R4 validator refuses what we served.
A list ending in "+" is incomplete (the value set is larger) and is not checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from iopcare.gateway.errors import FhirHttpError, Problem

#: At most this many problems are reported for one document.
MAX_PROBLEMS = 20


def _walk(model: BaseModel, path: str, problems: list[Problem]) -> None:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name, None)
        if value is None:
            continue
        here = f"{path}.{info.alias or name}" if path else str(info.alias or name)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        allowed: Any = extra.get("enum_values")
        checked = isinstance(allowed, list) and "+" not in allowed
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"{here}[{index}]" if isinstance(value, list) else here
            if isinstance(item, BaseModel):
                _walk(item, where, problems)
            elif checked and isinstance(item, str) and item not in allowed:
                problems.append(
                    Problem(
                        "code-invalid",
                        f"{item[:40]!r} is not one of {' | '.join(allowed)} (a required binding)",
                        where,
                    )
                )
            if len(problems) >= MAX_PROBLEMS:
                return


def check(model: BaseModel, root: str) -> None:
    """Refuses (422) a parsed resource that uses a code outside a required binding; element
    paths start with `root` (the type, or "" for paths relative to the resource)."""
    problems: list[Problem] = []
    _walk(model, root, problems)
    if problems:
        raise FhirHttpError(422, problems[:MAX_PROBLEMS])
