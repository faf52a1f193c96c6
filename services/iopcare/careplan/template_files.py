"""Reading the program templates (JSON files) that `domain.templates` drafts plans from."""

from __future__ import annotations

import json
from pathlib import Path

from iopcare.careplan.domain.templates import Template

SHIPPED = Path(__file__).parent / "templates"


def load_templates(folder: Path | None = None) -> list[Template]:
    templates = []
    for path in sorted((folder or SHIPPED).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        templates.append(
            Template(
                id=data["id"],
                title=data["title"],
                diagnosis_prefixes=tuple(data["diagnosis_prefixes"]),
                weeks=int(data["weeks"]),
                activities=list(data["activities"]),
                goals=list(data["goals"]),
            )
        )
    return templates
