"""The checked-in generated gRPC code matches protos/ (regenerate with `make proto`)."""

from __future__ import annotations

from pathlib import Path

from iopcare.devtools import protogen


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generated = protogen.generate(tmp_path)
    stale = []
    for path in generated:
        checked_in = protogen.OUTPUT_ROOT / path.relative_to(tmp_path)
        if not checked_in.exists() or checked_in.read_bytes() != path.read_bytes():
            stale.append(str(checked_in.relative_to(protogen.REPO_ROOT)))
    assert not stale, f"run `make proto`: stale generated files {stale}"
