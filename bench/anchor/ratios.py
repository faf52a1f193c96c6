"""Prints the side-by-side ratio table from the wrk outputs of bench/anchor/side_by_side.sh.

usage: python bench/anchor/ratios.py OUT_DIR
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(path: Path) -> dict[str, float]:
    """Rate, p50 and p99 (ms) and the non-2xx count of one wrk --latency output."""
    text = path.read_text()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if not (rate and p50 and p99):
        raise SystemExit(f"{path}: not a wrk --latency output:\n{text[-500:]}")
    return {
        "rate": float(rate.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "errors": float(bad.group(1)) if bad else 0.0,
    }


def main(out: Path) -> None:
    print("| measure | this project (`make run`, SQLite) | HAPI JPA (H2) | ratio |")
    print("| --- | --- | --- | --- |")
    for label, name in (("GET CarePlan/{id}", "get"), ("POST CarePlan", "post")):
        ours, hapi = parse(out / f"iopcare-{name}.txt"), parse(out / f"hapi-{name}.txt")

        def cell(m: dict[str, float]) -> str:
            errors = f", {m['errors']:.0f} non-2xx" if m["errors"] else ""
            return f"{m['rate']:.0f}/s, p50 {m['p50']:.0f} ms, p99 {m['p99']:.0f} ms{errors}"

        ratio = ours["rate"] / hapi["rate"] if hapi["rate"] else float("nan")
        p99 = "p99 no worse" if ours["p99"] <= hapi["p99"] else "p99 worse"
        print(f"| {label} | {cell(ours)} | {cell(hapi)} | {ratio:.2f}x ({p99}) |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
