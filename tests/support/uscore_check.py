"""US Core 6.1 checks of what the gateway sends (no US Core package can be had here, so the
profiles' required and Must Support elements are checked from `iopcare.gateway.uscore.PROFILES`):
every resource of a type US Core profiles, in any response body (Bundle entries and Parameters
included), must claim its profile in `meta.profile` and have what that profile requires."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from iopcare.gateway import uscore

SUBSETTED = "SUBSETTED"


def resources_in(body: Any, where: str = "body") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every resource a response body carries (not contained ones), with where it is."""
    if not isinstance(body, dict) or "resourceType" not in body:
        return
    kind = body["resourceType"]
    if kind == "Bundle":
        for index, entry in enumerate(body.get("entry", [])):
            yield from resources_in(entry.get("resource"), f"{where}.entry[{index}]")
            outcome = entry.get("response", {}).get("outcome")
            yield from resources_in(outcome, f"{where}.entry[{index}].response.outcome")
        return
    if kind == "Parameters":
        for index, parameter in enumerate(body.get("parameter", [])):
            yield from resources_in(parameter.get("resource"), f"{where}.parameter[{index}]")
        return
    yield where, body


def _subsetted(resource: dict[str, Any]) -> bool:
    return any(t.get("code") == SUBSETTED for t in resource.get("meta", {}).get("tag", []))


@dataclass
class UsCoreReport:
    #: False claims: a claimed profile whose required elements are absent.
    problems: list[str] = field(default_factory=list)
    #: Resources of a profiled type claiming nothing, as they lack what the profile requires.
    unclaimed: list[str] = field(default_factory=list)
    claims: Counter[str] = field(default_factory=Counter)
    #: (profile id, Must Support path) absent, and how often (data the program does not keep).
    must_support_gaps: Counter[tuple[str, str]] = field(default_factory=Counter)
    unprofiled: Counter[str] = field(default_factory=Counter)


def check(bodies: dict[str, Any], report: UsCoreReport | None = None) -> UsCoreReport:
    """Checks every resource in `bodies` (name: response body)."""
    report = report or UsCoreReport()
    for name, body in bodies.items():
        for where, resource in resources_in(body):
            kind = resource.get("resourceType", "")
            if kind not in uscore.PROFILES or _subsetted(resource):
                continue
            claimed = [p for p in resource.get("meta", {}).get("profile", []) if p in uscore.BY_URL]
            expected = uscore.candidates(resource)
            if not claimed:
                if expected:
                    gaps = uscore.missing(resource, expected[-1])
                    report.unclaimed.append(
                        f"{name} {where}: {kind}/{resource.get('id')} claims no US Core profile "
                        f"(lacks {gaps})"
                    )
                else:
                    # An Observation US Core 6.1 has no profile for (e.g. an exam finding).
                    report.unprofiled[kind] += 1
            for url in claimed:
                profile = uscore.BY_URL[url]
                gaps = uscore.missing(resource, profile)
                if gaps:
                    report.problems.append(
                        f"{name} {where}: {kind}/{resource.get('id')} claims {profile.id} but "
                        f"lacks {gaps}"
                    )
                if profile.type != kind:
                    report.problems.append(f"{name} {where}: {kind} claims {profile.id}")
                report.claims[profile.id] += 1
                for path in uscore.missing_must_support(resource, profile):
                    report.must_support_gaps[(profile.id, path)] += 1
    return report
