"""The tests that docs/test-matrix.md and the attack table of docs/security.md name exist.

A doc that says "covered by tests/x.py::test_y" is a claim a reader checks by running that test;
once the test is renamed or deleted the claim is false without anyone noticing. This reads every
table row of the matrix (and of the attack table), finds each `path.py::name` reference in
backticks, and fails on a file or a function (module level, `async`, or inside a class; a
parametrised test named without its brackets) that is not there. It also checks that the matrix
lists every scenario once with a known status and that its summary counts agree with its rows.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MATRIX = REPO / "docs" / "test-matrix.md"
SECURITY = REPO / "docs" / "security.md"
ATTACKS_HEADING = "## Attacks and the tests that cover them"

#: The scenarios of the matrix, in its numbering (A6, C6, C13 and D10 are not used).
ROW_IDS = (
    [f"A{n}" for n in (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15)]
    + [f"B{n}" for n in range(1, 9)]
    + [f"C{n}" for n in (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15)]
    + ["D1", "D2", "D3-D6", "D7", "D8", "D9", "D11", "D12", "E1", "E2"]
)
STATUSES = ("covered", "partly", "not covered")

#: A code span naming a test: `dir/file.py::name`, `file.py::name`, `::name` (the file named
#: last in the same cell), or a file alone; a parametrised name may carry its `[id]`.
REFERENCE = re.compile(r"^(?P<path>[\w./-]+\.py)?(?:::(?P<name>[A-Za-z_]\w*)(?:\[[^\]`]*\])?)?$")


@dataclass(frozen=True)
class Reference:
    path: str  # relative to the repository root
    name: str | None  # None: the file alone


def section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same level."""
    start = markdown.index(heading) + len(heading)
    following = re.search(r"^## ", markdown[start:], re.M)
    return markdown[start : start + following.start()] if following else markdown[start:]


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every table row that is neither a header separator nor empty."""
    rows = []
    for line in markdown.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.fullmatch(r"[|\s:-]+", line):
            continue
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def references(markdown: str, default_dir: str | None) -> list[Reference]:
    """Every test reference in the tables of `markdown`. A bare file name is taken to be in
    `default_dir`; with no default it is kept as written (and then not found)."""
    found = []
    for row in table_rows(markdown):
        for cell in row:
            current: str | None = None
            for span in re.findall(r"`([^`]+)`", cell):
                match = REFERENCE.match(span.strip())
                if not match or not (match["path"] or match["name"]):
                    continue
                path = match["path"]
                if path is not None:
                    if "/" not in path and default_dir is not None:
                        path = f"{default_dir}/{path}"
                    current = path
                elif current is None:
                    found.append(Reference(f"<no file before ::{match['name']}>", match["name"]))
                    continue
                found.append(Reference(current, match["name"]))
    return found


def defined_names(source: str) -> set[str]:
    """Functions defined at module level or in a class (nested classes included)."""
    names: set[str] = set()

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.ClassDef):
                walk(node.body)

    walk(ast.parse(source).body)
    return names


def missing(refs: list[Reference], root: Path) -> list[str]:
    """The references whose file or function does not exist under `root`."""
    problems = []
    cache: dict[Path, set[str]] = {}
    for ref in refs:
        file = root / ref.path
        if not file.is_file():
            problems.append(f"{ref.path}: no such file")
            continue
        if ref.name is None:
            continue
        if file not in cache:
            cache[file] = defined_names(file.read_text())
        if ref.name not in cache[file]:
            problems.append(f"{ref.path}::{ref.name}: no such function")
    return problems


def matrix_rows(markdown: str) -> dict[str, list[str]]:
    """The rows of the matrix's scenario tables, by scenario id."""
    rows: dict[str, list[str]] = {}
    for cells in table_rows(markdown):
        if re.fullmatch(r"[A-E]\d+(-[A-E]\d+)?", cells[0]):
            assert cells[0] not in rows, f"{cells[0]} is listed twice"
            rows[cells[0]] = cells
    return rows


def test_every_test_the_matrix_names_exists() -> None:
    refs = references(MATRIX.read_text(), default_dir=None)
    assert len({r for r in refs if r.name}) >= 100  # the parser found the tables
    assert all(r.path.startswith(("tests/", "bench/")) for r in refs), refs
    assert missing(refs, REPO) == []


def test_every_test_the_attack_table_names_exists() -> None:
    attacks = section(SECURITY.read_text(), ATTACKS_HEADING)
    refs = references(attacks, default_dir="tests/security")
    assert len({r for r in refs if r.name}) >= 50
    assert missing(refs, REPO) == []


def test_the_matrix_lists_every_scenario_once_with_a_status_and_its_summary_adds_up() -> None:
    text = MATRIX.read_text()
    rows = matrix_rows(section(text, "## A.") + section(text, "## B.") + section(text, "## C."))
    rows |= matrix_rows(section(text, "## D.") + section(text, "## E."))
    assert list(rows) == ROW_IDS
    # columns: id, scenario, tests, databases, status, gap
    assert all(len(cells) == 6 for cells in rows.values()), rows
    by_status = {s: [i for i, cells in rows.items() if cells[4] == s] for s in STATUSES}
    assert sum(len(ids) for ids in by_status.values()) == len(ROW_IDS), "unknown status"
    for row_id in by_status["covered"] + by_status["partly"]:
        assert references(f"| {rows[row_id][2]} |", None), f"{row_id} names no test"
    for row_id in by_status["partly"] + by_status["not covered"]:
        assert rows[row_id][5], f"{row_id} does not say what is missing"
    summary = {cells[0]: cells[1] for cells in table_rows(section(text, "## Summary"))}
    for status, ids in by_status.items():
        count, _, listed = summary[status].partition(": ")
        assert int(count) == len(ids), (status, count, ids)
        assert _expand(listed) == ids, (status, listed, ids)


def _expand(listed: str) -> list[str]:
    """'A1, B1-B3, D3-D6' as row ids: a range of one letter's rows, except the row D3-D6."""
    ids: list[str] = []
    for part in listed.split(", "):
        if part in ROW_IDS:
            ids.append(part)
        else:
            first, last = part.split("-")
            ids.extend(ROW_IDS[ROW_IDS.index(first) : ROW_IDS.index(last) + 1])
    return ids


def test_the_checker_reports_a_missing_file_and_a_missing_function(tmp_path: Path) -> None:
    # Without this, a parser that found nothing would let every test above pass.
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_here.py").write_text(
        "import pytest\n\n"
        "def test_plain():\n    pass\n\n"
        "async def test_async():\n    pass\n\n"
        "class TestGroup:\n"
        "    @pytest.mark.parametrize('x', [1, 2])\n"
        "    def test_in_a_class(self, x):\n        pass\n\n"
        "def helper():\n    def test_nested_in_a_function():\n        pass\n"
    )
    table = (
        "| # | tests |\n| --- | --- |\n"
        "| 1 | `tests/test_here.py::test_plain`, `::test_async`, `::test_in_a_class[1]` |\n"
        "| 2 | `tests/test_here.py::test_renamed_away`; `tests/test_gone.py::test_plain` |\n"
        "| 3 | `tests/test_here.py::test_nested_in_a_function`, `here.py::test_plain` |\n"
        "| 4 | `::test_plain`, `IOPCARE_X=1`, `kill`, `$everything` |\n"
    )
    refs = references(table, default_dir=None)
    assert [r.name for r in refs] == [
        "test_plain",
        "test_async",
        "test_in_a_class",
        "test_renamed_away",
        "test_plain",
        "test_nested_in_a_function",
        "test_plain",
        "test_plain",
    ]
    assert missing(refs, tmp_path) == [
        "tests/test_here.py::test_renamed_away: no such function",
        "tests/test_gone.py: no such file",
        "tests/test_here.py::test_nested_in_a_function: no such function",
        "here.py: no such file",
        "<no file before ::test_plain>: no such file",
    ]
    # A bare file name resolves in the table's folder, as in docs/security.md.
    assert missing(references("| `test_here.py::test_plain` |", "tests"), tmp_path) == []
