"""The root of every service's schema: its MetaData with the kit's tables (outbox, inbox, request
log, audit log), the care-team memberships, and the journal its writes go through.

Each service binds one (`SCHEMA = ServiceSchema(codes.SOURCE, topics.<SERVICE>)`) in its store and
adds its own tables to `SCHEMA.metadata`; a service that projects careplan's care teams (scheduling,
notes) also adds the projection's bookkeeping with `add_team_projection()`.
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table

from iopcare.kit.journal import Journal
from iopcare.kit.schema import add_kit_tables
from iopcare.kit.teams import add_member_table, add_projection_table


class ServiceSchema:
    def __init__(self, source: str, topic: str) -> None:
        self.metadata = MetaData()
        kit = add_kit_tables(self.metadata)
        self.outbox = kit["outbox"]
        self.inbox = kit["inbox"]
        self.request_log = kit["request_log"]
        self.audit_log = kit["audit_log"]
        #: Where the service's writes leave their events (published on `topic` after commit) and
        #: audit rows, in the writing transaction.
        self.journal = Journal(source, topic, self.outbox, self.audit_log)
        #: Who is on which patient's care team: careplan writes these rows with the team, the
        #: other services project them from careplan's careteam events (kit.teams).
        self.care_team_member = add_member_table(self.metadata)

    @property
    def kit_tables(self) -> tuple[Table, Table, Table, Table]:
        """outbox, inbox, request log, audit log."""
        return self.outbox, self.inbox, self.request_log, self.audit_log

    def add_team_projection(self) -> Table:
        """The latest care team version a projecting service has applied (kit.teams)."""
        return add_projection_table(self.metadata)
