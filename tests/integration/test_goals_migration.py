"""Migration 0016 (ADR 0022): the goals contained in stored plans become Goals of their own, and
its downgrade contains them again, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from alembic import command
from sqlalchemy import select

from iopcare.careplan import app as careplan_app
from iopcare.careplan import store
from iopcare.careplan.domain.goals import CONTAINED_GOAL_SYSTEM, goal_discipline
from iopcare.careplan.domain.templates import draft_plan
from iopcare.careplan.template_files import load_templates
from iopcare.kit import fhir, privacy
from iopcare.kit.db import Database, alembic_config
from iopcare.kit.versioned import Stored


def _to(db: Database, direction: str, target: str) -> None:
    config = alembic_config(careplan_app.MIGRATIONS, db.url)
    with db.write_engine.connect() as conn:
        config.attributes["connection"] = conn
        getattr(command, direction)(config, target)
        conn.commit()


def _plan(plan_id: str, patient_id: str, status: str) -> Stored:
    """A plan as stored before 0016: a template draft with contained goals and Part 2 labels."""
    template = next(t for t in load_templates() if t.id == "adult-mood-si-iop")
    plan = draft_plan(template, patient_id, "F32.1", "team-1", date(2026, 11, 2))
    plan["status"] = status
    plan["meta"] = {"security": [{"system": privacy.ACT_CODE_SYSTEM, "code": "PSY"}]}
    plan["activity"][0]["detail"]["goal"] = [{"reference": "#goal1"}]
    now = datetime(2026, 11, 2, tzinfo=UTC)
    text = fhir.with_identity(fhir.parse_resource(plan, "CarePlan"), plan_id, 3, now)
    return Stored(plan_id, 3, patient_id, status, now, text)


def test_contained_goals_become_goals_and_come_back_on_downgrade(database_url: str) -> None:
    db = Database(database_url)
    try:
        _to(db, "upgrade", "0014")
        active, draft = _plan("plan-a", "pat-a", "active"), _plan("plan-d", "pat-d", "draft")
        with db.write_engine.begin() as conn:
            for plan in (active, draft):
                conn.execute(
                    store.plans.current.insert().values(
                        id=plan.id,
                        patient_id=plan.patient_id,
                        status=plan.status,
                        version=plan.version,
                        resource=plan.resource,
                        created_at=plan.updated_at,
                        updated_at=plan.updated_at,
                    )
                )
                for version in (1, 2, 3):  # earlier versions stay as they were
                    conn.execute(
                        store.plans.history.insert().values(
                            id=plan.id,
                            version=version,
                            resource=plan.resource,
                            changed_at=plan.updated_at,
                            changed_by="Practitioner/p1",
                            change="update",
                            status=plan.status,
                        )
                    )
        _to(db, "upgrade", "0016")
        with db.read() as conn:
            stored = store.plans.load(conn, "plan-a")
            goals = store.goals.for_patient(conn, "pat-a")
            other = store.goals.for_patient(conn, "pat-d")
            current = store.plans.load_version(conn, "plan-a", 3)
            first = store.plans.load_version(conn, "plan-a", 1)
        assert stored is not None and current is not None and first is not None
        plan = json.loads(stored.resource)
        assert "contained" not in plan and current.resource == stored.resource
        assert "contained" in json.loads(first.resource)  # history before it is history
        by_id = {g.id: g for g in goals}
        assert sorted(g["reference"] for g in plan["goal"]) == sorted(f"Goal/{i}" for i in by_id)
        goals = [by_id[g["reference"][5:]] for g in plan["goal"]]  # in the plan's order
        assert plan["activity"][0]["detail"]["goal"] == [{"reference": f"Goal/{goals[1].id}"}]
        assert len(goals) == 4 and len(other) == 4
        resources = [json.loads(g.resource) for g in goals]
        assert [g.status for g in goals] == ["active"] * 4  # the plan is active
        assert {g.status for g in other} == {"proposed"}
        assert [goal_discipline(r) for r in resources] == [
            "therapist",
            "psychiatrist",
            "therapist",
            "psychiatrist",
        ]
        for resource, goal in zip(resources, goals, strict=True):
            assert resource["id"] == goal.id and resource["meta"]["versionId"] == "1"
            assert resource["subject"] == {"reference": "Patient/pat-a"}
            assert {s["code"] for s in resource["meta"]["security"]} == {"PSY"}
            fhir.parse_resource(resource, "Goal")  # valid R4
        assert resources[0]["identifier"] == [{"system": CONTAINED_GOAL_SYSTEM, "value": "goal0"}]

        _to(db, "downgrade", "0014")
        with db.read() as conn:
            back = store.plans.load(conn, "plan-a")
            left = conn.execute(select(store.goals.current.c.id)).all()
            history = conn.execute(select(store.goals.history.c.id)).all()
        assert back is not None and left == [] and history == []
        plan = json.loads(back.resource)
        contained = [c for c in plan["contained"] if c["resourceType"] == "Goal"]
        assert [c["id"] for c in contained] == ["goal0", "goal1", "goal2", "goal3"]
        assert [g["reference"] for g in plan["goal"]] == ["#goal0", "#goal1", "#goal2", "#goal3"]
        assert plan["activity"][0]["detail"]["goal"] == [{"reference": "#goal1"}]
        assert all(
            "identifier" not in c and "versionId" not in c.get("meta", {}) for c in contained
        )
        fhir.parse_resource(plan, "CarePlan")
        _to(db, "upgrade", "head")  # and up again
        with db.read() as conn:
            assert len(store.goals.for_patient(conn, "pat-a")) == 4
    finally:
        db.dispose()
