"""notes' schema root: one MetaData for all its tables, the kit's tables (outbox, inbox, request
log, audit log), the care-team projection, and the journal its writes go through."""

from __future__ import annotations

from sqlalchemy import MetaData

from iopcare.kit import topics
from iopcare.kit.journal import Journal
from iopcare.kit.schema import add_kit_tables
from iopcare.kit.teams import add_member_table, add_projection_table
from iopcare.notes import codes

metadata = MetaData()
kit = add_kit_tables(metadata)
#: The care team memberships, projected from careplan's careteam events: who may see a patient.
care_team_member = add_member_table(metadata)
care_team_seen = add_projection_table(metadata)
outbox, inbox, request_log, audit_log = (
    kit["outbox"],
    kit["inbox"],
    kit["request_log"],
    kit["audit_log"],
)
#: Where notes' writes leave their events and audit rows (in the writing transaction).
JOURNAL = Journal(codes.SOURCE, topics.NOTES, outbox, audit_log)
