"""Guard-rails of the architecture that a reviewer would otherwise have to remember."""

from __future__ import annotations

import re
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services" / "iopcare"


def _sources() -> list[Path]:
    return [p for p in SERVICES.rglob("*.py") if "_pb2" not in p.name]


def test_fhir_models_are_imported_from_one_module_only() -> None:
    # One FHIR release (R4, validated with the R4B models), from kit/fhir.py: importing
    # fhir.resources anywhere else would silently validate against R5.
    offenders = [
        str(p.relative_to(SERVICES))
        for p in _sources()
        if re.search(r"^\s*(from|import) fhir\.resources", p.read_text(), re.M)
        and p.name != "fhir.py"
    ]
    assert offenders == []


def test_domain_modules_do_no_io() -> None:
    forbidden = re.compile(
        r"^\s*(from|import) (sqlalchemy|grpc|kafka|iopcare\.kit\.(db|rpc|relay|consumer|teams))",
        re.M,
    )
    offenders = [
        str(p.relative_to(SERVICES))
        for p in _sources()
        if "/domain/" in str(p) and forbidden.search(p.read_text())
    ]
    assert offenders == []
