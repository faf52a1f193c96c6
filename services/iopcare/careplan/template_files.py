"""Reading the program templates (JSON files) that `domain.templates` drafts plans from."""

from __future__ import annotations

import json
from pathlib import Path

from iopcare.careplan.domain.templates import Template, check_template

SHIPPED = Path(__file__).parent / "templates"
#: The general IOP plan drafted when no program template matches (docs/templates.md).
GENERAL = SHIPPED / "general-iop.json"


def load_template(path: Path) -> Template:
    """One template file, checked (INVALID_ARGUMENT naming the file and field if wrong)."""
    return check_template(json.loads(path.read_text(encoding="utf-8")), source=path.name)


def load_templates(folder: Path | None = None) -> list[Template]:
    """Every template in the folder (the shipped ones by default), in file-name order. A folder
    without a fallback template gets the shipped general plan, so no diagnosis drafts nothing."""
    templates = [load_template(path) for path in sorted((folder or SHIPPED).glob("*.json"))]
    if not any(t.fallback for t in templates):
        templates.append(load_template(GENERAL))
    return templates
