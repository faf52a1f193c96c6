"""Generates the gRPC and protobuf Python code from `protos/` into `services/`.

The generated modules are checked in (so an installed package needs no code generation step) and
never edited by hand; `tests/unit/test_proto_drift.py` regenerates them into a temporary folder and
fails when the checked-in copies differ.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parents[3]
PROTO_ROOT = REPO_ROOT / "protos"
OUTPUT_ROOT = REPO_ROOT / "services"


def proto_files() -> list[Path]:
    """The project's own protos. `protos/google/` holds vendored copies of Google's common types
    (e.g. `google/type/date.proto`) so that protoc and buf resolve their imports; their Python
    modules come from the googleapis-common-protos package, so they are not generated here."""
    return sorted((PROTO_ROOT / "iopcare").rglob("*.proto"))


def generate(output_root: Path = OUTPUT_ROOT) -> list[Path]:
    """Runs protoc for every proto file; returns the generated files."""
    well_known = str(resources.files("grpc_tools") / "_proto")
    files = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    generated = []
    for rel in files:
        stem = output_root / rel.removesuffix(".proto")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            generated.append(stem.with_name(stem.name + suffix))
        # Generated packages need an __init__ to be importable as regular packages.
        for folder in stem.parent.relative_to(output_root).parents:
            if str(folder) != ".":
                (output_root / folder / "__init__.py").touch(exist_ok=True)
        (stem.parent / "__init__.py").touch(exist_ok=True)
    return generated


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(REPO_ROOT))
    sys.exit(0)
