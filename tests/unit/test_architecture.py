"""Guard-rails of the architecture that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
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


# Service boundaries ------------------------------------------------------------------------------
#: The services and the gateway: each runs as its own process and may use another only through
#: that one's generated gRPC stubs (`v1`) and its `contract` module.
COMPONENTS = ("careplan", "scheduling", "notes", "gateway")
#: What a service publishes for the others (docs/architecture.md, "Service boundaries").
PUBLIC = ("v1", "contract")
#: The runtime packages: everything that runs in a service's or the gateway's process.
RUNTIME = (*COMPONENTS, "kit")


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import in `source` (the text of module `module`), including lazy
    and TYPE_CHECKING imports; `from a import b` counts as `a.b`, since `b` may be a submodule
    (a name that is not one only makes the check stricter, never looser)."""
    found: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def boundary_violations(source: str, module: str) -> list[str]:
    """Imports in `module` that reach into another component's internals: anything of another
    service but its `v1` and `contract`, anything of the gateway from outside it, any service from
    the kit, and the dev tooling from any runtime package."""
    parts = module.split(".")
    own = parts[1] if len(parts) > 1 else ""
    problems = []
    for line, name in imported_modules(source, module):
        target = name.split(".")
        if target[0] != "iopcare" or len(target) < 2:
            continue
        other = target[1]
        if other == "devtools" and own in RUNTIME:
            problems.append(f"{module}:{line} imports {name} (dev tooling)")
        elif other in COMPONENTS and other != own and own in RUNTIME:
            public = other != "gateway" and own != "kit" and len(target) > 2 and target[2] in PUBLIC
            if not public:
                problems.append(f"{module}:{line} imports {name}")
    return problems


def _module_name(path: Path) -> str:
    relative = path.relative_to(SERVICES.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts[-1] = "_"  # a package's own imports resolve against the package itself
    return ".".join(parts)


def test_services_use_each_other_only_through_v1_and_contract() -> None:
    offenders = [
        problem
        for path in _sources()
        for problem in boundary_violations(path.read_text(), _module_name(path))
    ]
    assert offenders == []


def test_the_boundary_check_catches_reaching_into_another_service() -> None:
    source = """
from iopcare.careplan.contract import measure_from_fhir
from iopcare.careplan.v1 import careplan_service_pb2
from iopcare.scheduling import contract as scheduling
from iopcare.kit import privacy
from iopcare.notes import store
from iopcare.careplan.fhir_map import measure_from_fhir as internal
import iopcare.scheduling.codes
from iopcare import scheduling as whole

def lazy():
    from iopcare.careplan import codes, contract
    from ..careplan import service
"""
    assert boundary_violations(source, "iopcare.notes.service") == [
        "iopcare.notes.service:7 imports iopcare.careplan.fhir_map.measure_from_fhir",
        "iopcare.notes.service:8 imports iopcare.scheduling.codes",
        "iopcare.notes.service:9 imports iopcare.scheduling",
        "iopcare.notes.service:12 imports iopcare.careplan.codes",
        "iopcare.notes.service:13 imports iopcare.careplan.service",
    ]  # notes' own store (line 6) is not another service's


def test_the_boundary_check_keeps_the_kit_and_the_gateway_to_themselves() -> None:
    assert boundary_violations("from iopcare.notes import contract", "iopcare.kit.privacy") == [
        "iopcare.kit.privacy:1 imports iopcare.notes.contract"
    ]
    assert boundary_violations("from iopcare.gateway import client", "iopcare.notes.api") == [
        "iopcare.notes.api:1 imports iopcare.gateway.client"
    ]
    assert boundary_violations("from iopcare.devtools import processes", "iopcare.gateway.x") == [
        "iopcare.gateway.x:1 imports iopcare.devtools.processes (dev tooling)"
    ]
    # The command line composes everything, dev tooling included.
    assert boundary_violations("from iopcare.devtools import kafka_broker", "iopcare.cli") == []
    assert boundary_violations("from iopcare.notes import store", "iopcare.cli") == []


def test_only_the_gateway_app_imports_the_gateway_api() -> None:
    # `api.Gateway` routes to the operations (bundles, handoff, summary_out); they see it only as
    # `http.GatewayContext`, so importing `api` back would bring the cycle back.
    gateway = SERVICES / "gateway"
    offenders = [
        f"{path.name}:{line}"
        for path in gateway.rglob("*.py")
        if path.name not in ("api.py", "app.py")
        for line, name in imported_modules(path.read_text(), _module_name(path))
        if name == "iopcare.gateway.api" or name.startswith("iopcare.gateway.api.")
    ]
    assert offenders == []


# Function length ---------------------------------------------------------------------------------
#: Issue 11: no function longer than this without a reason written next to it.
MAX_FUNCTION_LINES = 80
#: The reason's marker: on the line before the `def` (above any decorators) or as the first line
#: of the body.
LONG_REASON = "# Over 80 lines:"


def long_functions(source: str) -> list[tuple[int, str, int]]:
    """(line, name, length) of every function in `source` longer than MAX_FUNCTION_LINES lines
    (counted from `def` to its last line) without a `# Over 80 lines:` reason next to it."""
    lines = source.splitlines()
    found: list[tuple[int, str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length <= MAX_FUNCTION_LINES:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        before = lines[first - 2].strip() if first >= 2 else ""
        # The first body line: the line after the signature (which may span several lines).
        body_start = node.body[0].lineno
        after = lines[body_start - 2].strip() if body_start - 2 >= node.lineno else ""
        opening = lines[body_start - 1].strip()
        if not any(text.startswith(LONG_REASON) for text in (before, after, opening)):
            found.append((node.lineno, node.name, length))
    return found


def test_no_function_is_over_80_lines_without_a_reason() -> None:
    offenders = [
        f"{p.relative_to(SERVICES)}:{line} {name} ({length} lines)"
        for p in _sources()
        if "/v1/" not in str(p) and "/migrations/" not in str(p)
        for line, name, length in long_functions(p.read_text())
    ]
    assert offenders == []


def test_the_length_check_counts_lines_and_accepts_a_written_reason() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    assert long_functions(f"def short():\n{body[: -len('    x79 = 79') - 1]}") == []
    assert long_functions(f"def long():\n{body}") == [(1, "long", 81)]
    assert long_functions(f"# Over 80 lines: a literal.\n@decorated\ndef long():\n{body}") == []
    assert long_functions(f"def long():\n    # Over 80 lines: a literal.\n{body}") == []
    reasoned = f"# Over 80 lines: a literal.\ndef long():\n{body}"
    assert long_functions(f"{reasoned}def other():\n{body}") == [(83, "other", 81)]
