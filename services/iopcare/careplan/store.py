"""The care plan service's tables and the queries on them."""

from __future__ import annotations

from sqlalchemy import MetaData

from iopcare.kit.schema import add_kit_tables
from iopcare.kit.teams import add_member_table
from iopcare.kit.versioned import Stored, VersionedTables

metadata = MetaData()
kit = add_kit_tables(metadata)
outbox, inbox, request_log, audit_log = (
    kit["outbox"],
    kit["inbox"],
    kit["request_log"],
    kit["audit_log"],
)

plans = VersionedTables(metadata, "care_plan")
care_plan, care_plan_history = plans.current, plans.history

teams = VersionedTables(metadata, "care_team")

#: Who is on which patient's team, from the current version of every CareTeam: the access rule
#: (a clinician sees a patient while on an active team of theirs) is one indexed lookup here.
care_team_member = add_member_table(metadata)

StoredPlan = Stored
