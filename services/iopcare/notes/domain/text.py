"""What free text a client sends may contain (pure; no I/O)."""

from __future__ import annotations

import re

#: FHIR R4 `string` (http://hl7.org/fhir/R4/datatypes.html#string): "Strings SHALL NOT contain
#: Unicode character points below 32, except for u0009 (horizontal tab), u0010 (carriage return)
#: and u0013 (line feed)". Everything notes stores becomes FHIR (and events other services parse,
#: which refuse a NUL), and PostgreSQL text cannot hold a NUL at all: refused at the edge, on both
#: databases alike, rather than stored on SQLite and failing later or elsewhere.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

FORBIDDEN_CHARACTERS = "no control characters (NUL and others below U+0020 but tab and newlines)"


def has_forbidden_characters(value: str) -> bool:
    return _FORBIDDEN.search(value) is not None
