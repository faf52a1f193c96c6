"""Message drafts: a message saved by its sender before it is sent to the thread."""

from alembic import op

from iopcare.kit import migration_columns as col

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "message_draft",
        col.key(),
        col.ref("patient_id"),
        col.who("sender"),
        col.version(),
        col.text("body"),
        col.at("updated_at"),
    )
    op.create_index("ix_message_draft_sender", "message_draft", ["sender", "patient_id"])


def downgrade() -> None:
    op.drop_table("message_draft")
