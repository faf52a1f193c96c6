"""Realistic care plans for tests (unique patient per call, so tests sharing a topic never mix)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from iopcare.demo import demo_care_plan


def new_patient_id() -> str:
    return f"pat-{uuid.uuid4().hex[:12]}"


def iop_plan(patient_id: str | None = None, start: datetime | None = None) -> dict[str, Any]:
    plan = demo_care_plan(start or datetime.now(UTC))
    plan["subject"] = {"reference": f"Patient/{patient_id or new_patient_id()}"}
    return plan


def iop_plan_json(patient_id: str | None = None) -> str:
    return json.dumps(iop_plan(patient_id))
