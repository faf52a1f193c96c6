"""A service's field paths in a refusal, named as the FHIR elements the gateway took them from
(`part_of[0]` of PostMessage is `Communication.partOf[0]`), so a 422 points at the client's
element (issue 5: business-rule failures with the element path)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from iopcare.gateway.errors import FhirHttpError


def renamer(mapping: dict[str, str]) -> Callable[[str | None], str | None]:
    """Maps a field path by its first segment (an index on it is kept: `part_of[1]` ->
    `Communication.partOf[1]`); unknown paths stay as they are."""

    def rename(expression: str | None) -> str | None:
        if not expression:
            return expression
        head, dot, rest = expression.partition(".")
        name, bracket, index = head.partition("[")
        for candidate in (
            expression.split("[")[0],
            f"{name}.{rest.split('[')[0]}" if dot else "",
            name,
        ):
            if candidate and candidate in mapping:
                suffix = f"[{index}" if bracket and candidate == name else ""
                return mapping[candidate] + suffix
        return expression

    return rename


@contextmanager
def fhir_paths(mapping: dict[str, str]) -> Iterator[None]:
    """Within the block, a refusal's field paths are renamed with `mapping`."""
    try:
        yield
    except FhirHttpError as exc:
        rename = renamer(mapping)
        exc.problems = [replace(p, expression=rename(p.expression)) for p in exc.problems]
        raise
