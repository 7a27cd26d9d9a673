"""outbox set aside and inactive chats

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failure", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_outbox_failed_at", ["failed_at"], unique=False)
    op.create_table(
        "inactive_chats",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("user_ref", sa.String(length=128), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("channel", "user_ref", name=op.f("pk_inactive_chats")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("inactive_chats")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_failed_at")
        batch_op.drop_column("failure")
        batch_op.drop_column("failed_at")
