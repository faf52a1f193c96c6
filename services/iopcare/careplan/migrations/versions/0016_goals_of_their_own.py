"""Goals are Goals of their own (ADR 0022): the Goals contained in stored plans (template drafts
and handoffs before this revision) become Goal rows of the plan's patient, owned by a discipline
and carrying the plan's labels; the plan's current version refers to them as `Goal/{id}`.

The plan's current version is rewritten in place (its row and its history row): the content is
the same, only where the goals live changed. A goal of an active plan starts active. Downgrade
contains each such goal again (its current content, found by its CONTAINED_GOAL_SYSTEM
identifier: goals hoisted here or by the write path since) and deletes its rows."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from iopcare.careplan.domain.goals import contain_goals, hoist_goals, local_id
from iopcare.kit import fhir
from iopcare.kit.errors import InvalidArgument

revision = "0016"
down_revision = "0015"

BY = "migration:0016"
PLAN = sa.table(
    "care_plan",
    sa.column("id"),
    sa.column("patient_id"),
    sa.column("status"),
    sa.column("version"),
    sa.column("resource"),
)
PLAN_HISTORY = sa.table(
    "care_plan_history", sa.column("id"), sa.column("version"), sa.column("resource")
)
GOAL = sa.table(
    "goal",
    sa.column("id"),
    sa.column("patient_id"),
    sa.column("status"),
    sa.column("version"),
    sa.column("resource"),
    sa.column("created_at"),
    sa.column("updated_at"),
)
GOAL_HISTORY = sa.table(
    "goal_history",
    sa.column("id"),
    sa.column("version"),
    sa.column("resource"),
    sa.column("changed_at"),
    sa.column("changed_by"),
    sa.column("change"),
    sa.column("status"),
    sa.column("reason"),
)


def _canonical(data: dict[str, Any]) -> str:
    return fhir.to_json(fhir.parse_resource(data, data.get("resourceType")))


def _rewrite_plan(conn: sa.Connection, row: Any, plan: dict[str, Any]) -> None:
    text = _canonical(plan)
    conn.execute(PLAN.update().where(PLAN.c.id == row.id).values(resource=text))
    conn.execute(
        PLAN_HISTORY.update()
        .where((PLAN_HISTORY.c.id == row.id) & (PLAN_HISTORY.c.version == row.version))
        .values(resource=text)
    )


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    rows = conn.execute(sa.select(PLAN).order_by(PLAN.c.id)).all()
    for row in rows:
        plan = json.loads(row.resource)
        try:
            hoisted = hoist_goals(plan, row.patient_id, lambda: str(uuid.uuid4()))
        except InvalidArgument:
            continue  # a contained goal of another subject: left as it was, for a person to see
        if not hoisted.goals:
            continue
        for goal_id, goal in hoisted.goals:
            if row.status == "active" and goal.get("lifecycleStatus") in ("proposed", "planned"):
                goal["lifecycleStatus"] = "active"
            meta = {**goal.get("meta", {}), "versionId": "1", "lastUpdated": fhir.instant(now)}
            text = _canonical({**goal, "id": goal_id, "meta": meta})
            status = str(goal.get("lifecycleStatus"))
            conn.execute(
                GOAL.insert().values(
                    id=goal_id,
                    patient_id=row.patient_id,
                    status=status,
                    version=1,
                    resource=text,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                GOAL_HISTORY.insert().values(
                    id=goal_id,
                    version=1,
                    resource=text,
                    changed_at=now,
                    changed_by=BY,
                    change="create",
                    status=status,
                    reason=f"contained goal of CarePlan/{row.id}",
                )
            )
        _rewrite_plan(conn, row, hoisted.plan)


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(PLAN).order_by(PLAN.c.id)).all()
    for row in rows:
        plan = json.loads(row.resource)
        refs = [
            g.get("reference")
            for g in plan.get("goal") or []
            if isinstance(g, dict) and str(g.get("reference", "")).startswith("Goal/")
        ]
        if not refs:
            continue
        found = conn.execute(
            sa.select(GOAL.c.id, GOAL.c.resource).where(
                GOAL.c.id.in_([r.split("/", 1)[1] for r in refs])
            )
        ).all()
        loaded = {f"Goal/{g.id}": json.loads(g.resource) for g in found}
        goals = {ref: loaded[ref] for ref in refs if ref in loaded}  # in the plan's order
        contained = contain_goals(plan, goals)
        if contained is plan:
            continue
        _rewrite_plan(conn, row, contained)
        gone = [ref.split("/", 1)[1] for ref, goal in goals.items() if local_id(goal)]
        conn.execute(GOAL_HISTORY.delete().where(GOAL_HISTORY.c.id.in_(gone)))
        conn.execute(GOAL.delete().where(GOAL.c.id.in_(gone)))
