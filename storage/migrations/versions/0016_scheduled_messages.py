"""scheduled messages: reminders and notices sent once at their time; outbox rows know
their announcement (progress)

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-02 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "scheduled_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("booking_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("slot_id", BIG_ID, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("booking_id", "kind", "slot_id"),
    )
    op.create_index(
        "ix_scheduled_messages_due", "scheduled_messages", ["done_at", "due_at"], unique=False
    )
    op.add_column("outbox", sa.Column("announcement_id", BIG_ID, nullable=True))
    op.create_index(
        "ix_outbox_announcement", "outbox", ["announcement_id", "sent_at"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_outbox_announcement", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("announcement_id")
    op.drop_index("ix_scheduled_messages_due", table_name="scheduled_messages")
    op.drop_table("scheduled_messages")
