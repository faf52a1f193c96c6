"""notes' schema root: one MetaData for all its tables, the kit's tables (outbox, inbox, request
log, audit log), the care-team projection, and the journal its writes go through."""

from __future__ import annotations

from iopcare.kit import topics
from iopcare.kit.service_schema import ServiceSchema
from iopcare.notes import codes

SCHEMA = ServiceSchema(codes.SOURCE, topics.NOTES)
metadata, JOURNAL = SCHEMA.metadata, SCHEMA.journal
outbox, inbox, request_log, audit_log = SCHEMA.kit_tables
#: The care team memberships, projected from careplan's careteam events: who may see a patient.
care_team_member = SCHEMA.care_team_member
care_team_seen = SCHEMA.add_team_projection()
