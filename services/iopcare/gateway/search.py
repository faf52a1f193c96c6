"""FHIR search parameters, matched against stored resources (pure functions).

The services answer "this patient's resources of a type"; the gateway narrows that list with the
standard parameters (token, date, `_id`, `_lastUpdated`) and pages it. One patient's record is
small (tens to hundreds of resources per type), so filtering here costs less than teaching every
service every parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from iopcare.gateway.errors import FhirHttpError, Problem

TOKEN, DATE, REFERENCE, STRING = "token", "date", "reference", "string"
DATE_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")


@dataclass(frozen=True)
class SearchParam:
    """A search parameter: its name, FHIR type and the element paths it reads (`a.b`, where
    each step may be a list)."""

    name: str
    type: str
    paths: tuple[str, ...]
    documentation: str = ""


class SearchQuery(dict[str, str]):
    """A search's parameters: as a dict (the last value of a repeated parameter) for the
    handlers' pushdown, plus every (name, value) pair in order, so that repeated parameters
    (`date=ge2026-01-01&date=lt2026-02-01`) AND together when the gateway filters."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = list(pairs)


def pairs_of(query: dict[str, str]) -> list[tuple[str, str]]:
    """Every (name, value) of a query: all repeats for a SearchQuery, else the dict's items."""
    return query.pairs if isinstance(query, SearchQuery) else list(query.items())


def date_bounds(query: dict[str, str], name: str) -> tuple[datetime | None, datetime | None]:
    """The instants [low, high) that every `name=` date parameter of the query allows (prefixes
    eq, ge, gt, le, lt, sa, eb; ne and ap leave the range open), for pushing a date range down
    to a service. The gateway still filters with each value exactly afterwards."""
    low: datetime | None = None
    high: datetime | None = None
    for key, value in pairs_of(query):
        if key != name or not value:
            continue
        prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
        start, end = parse_date_range(value[2:] if value[:2] in DATE_PREFIXES else value, name)
        if prefix in ("eq", "ge"):
            low = start if low is None else max(low, start)
        if prefix in ("gt", "sa"):
            low = end if low is None else max(low, end)
        if prefix in ("eq", "le"):
            high = end if high is None else min(high, end)
        if prefix in ("lt", "eb"):
            high = start if high is None else min(high, start)
    return low, high


COMMON = (
    SearchParam("_id", TOKEN, ("id",), "logical id"),
    SearchParam("_lastUpdated", DATE, ("meta.lastUpdated",), "when the version was stored"),
)


def values_at(resource: Any, path: str) -> Iterator[Any]:
    """Every value at a dotted path, stepping into lists."""
    items = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for item in items:
            if isinstance(item, dict) and step in item:
                value = item[step]
                nxt.extend(value if isinstance(value, list) else [value])
        items = nxt
    yield from items


def _tokens(value: Any) -> Iterator[tuple[str | None, str]]:
    """(system, code) pairs of a code, Coding, CodeableConcept or Identifier."""
    if isinstance(value, str | bool | int):
        yield None, str(value).lower() if isinstance(value, bool) else str(value)
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value["coding"]:
                yield from _tokens(coding)
        if "code" in value:
            yield value.get("system"), str(value["code"])
        if "value" in value and "code" not in value:
            yield value.get("system"), str(value["value"])


def match_token(resource: Any, param: SearchParam, value: str) -> bool:
    wanted = [v for v in value.split(",") if v]
    for path in param.paths:
        for found in values_at(resource, path):
            for system, code in _tokens(found):
                for want in wanted:
                    if "|" in want:
                        # `system|code`; `|code` and `system|` leave one side open.
                        want_system, _, want_code = want.partition("|")
                        if (not want_system or system == want_system) and (
                            not want_code or want_code == code
                        ):
                            return True
                    elif want == code:
                        return True
    return False


def parse_date_range(text: str, name: str) -> tuple[datetime, datetime]:
    """The instants [start, end) a FHIR date, dateTime or instant covers, by its precision."""
    try:
        if len(text) == 4:
            start = datetime(int(text), 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1)
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start, end
        if len(text) == 10:
            start = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment, moment + timedelta(microseconds=1)
    except ValueError:
        raise FhirHttpError(
            400, Problem("value", f"{name}: {text!r} is not a FHIR date or dateTime", name)
        ) from None


def _ranges(value: Any, name: str) -> Iterator[tuple[datetime, datetime]]:
    if isinstance(value, str):
        yield parse_date_range(value, name)
    elif isinstance(value, dict) and ("start" in value or "end" in value):
        low = parse_date_range(value["start"], name)[0] if "start" in value else datetime.min
        high = parse_date_range(value["end"], name)[1] if "end" in value else datetime.max
        yield low.replace(tzinfo=UTC), high.replace(tzinfo=UTC)


def match_date(resource: Any, param: SearchParam, value: str) -> bool:
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    low, high = parse_date_range(value[2:] if value[:2] in DATE_PREFIXES else value, param.name)
    for path in param.paths:
        for found in values_at(resource, path):
            for start, end in _ranges(found, param.name):
                if (
                    (prefix in ("eq", "ap") and start < high and end > low)
                    or (prefix == "ne" and not (start >= low and end <= high))
                    or (prefix == "lt" and start < low)
                    or (prefix == "le" and start < high)
                    or (prefix == "gt" and end > high)
                    or (prefix == "ge" and end > low)
                    or (prefix == "sa" and start >= high)
                    or (prefix == "eb" and end <= low)
                ):
                    return True
    return False


def match_string(resource: Any, param: SearchParam, value: str) -> bool:
    wanted = value.lower()
    for path in param.paths:
        for found in values_at(resource, path):
            texts = [found] if isinstance(found, str) else []
            if isinstance(found, dict):
                texts = [v for v in found.values() if isinstance(v, str)]
                texts += [v for v in found.get("given", []) if isinstance(v, str)]
            if any(t.lower().startswith(wanted) for t in texts):
                return True
    return False


def matches(resource: Any, param: SearchParam, value: str) -> bool:
    if param.type == TOKEN:
        return match_token(resource, param, value)
    if param.type == DATE:
        return match_date(resource, param, value)
    if param.type == STRING:
        return match_string(resource, param, value)
    return True  # reference parameters choose the patient; the service already applied them
