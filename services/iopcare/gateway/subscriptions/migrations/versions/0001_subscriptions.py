"""The gateway's subscriptions: Subscriptions, the events they wait on, the notifications they
send, and the consumer's inbox."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.schema import BigId, inbox_columns

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "subscription",
        col.key(),
        col.who("owner_subject"),
        col.string("owner_role", 32),
        col.string("owner_practitioner", 64, nullable=True),
        col.text("owner_scopes"),
        col.ref("owner_patient", nullable=True),
        col.string("request_id", 100, nullable=True),
        col.string("topic", 200),
        col.ref("patient_id", nullable=True),
        col.text("spec"),
        col.string("status", 16),
        col.text("error"),
        col.version(),
        sa.Column("events_since_start", sa.BigInteger, nullable=False),
        col.number("failures"),
        col.at("created_at"),
        col.at("updated_at"),
        col.at("last_sent_at", nullable=True),
        col.flag("deleted"),
        sa.UniqueConstraint("owner_subject", "request_id", name="uq_subscription_request"),
    )
    op.create_index("ix_subscription_topic", "subscription", ["topic", "status"])
    op.create_table(
        "subscription_event",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        col.string("event_id", 64, unique=True),
        col.string("event_type", 200),
        col.text("topics"),
        col.ref("patient_id"),
        col.string("focus", 200),
        col.flag("created"),
        col.at("received_at"),
        col.at("processed_at", nullable=True),
    )
    op.create_index("ix_subscription_event_open", "subscription_event", ["processed_at", "seq"])
    op.create_table(
        "subscription_notification",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        col.ref("subscription_id"),
        col.string("event_id", 64, nullable=True),
        col.string("kind", 32),
        sa.Column("event_number", sa.BigInteger, nullable=True),
        col.string("focus", 200, nullable=True),
        col.text("bundle"),
        col.string("state", 16),
        col.number("attempts"),
        col.at("created_at"),
        col.at("next_attempt_at"),
        col.text("last_error"),
        col.at("sent_at", nullable=True),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_notification_event"),
    )
    op.create_index(
        "ix_subscription_notification_due",
        "subscription_notification",
        ["state", "subscription_id", "id"],
    )
    op.create_table("subscription_inbox", *inbox_columns())


def downgrade() -> None:
    op.drop_table("subscription_inbox")
    op.drop_table("subscription_notification")
    op.drop_table("subscription_event")
    op.drop_table("subscription")
