"""WhatsApp: message statuses, longer outbox message ids

Revision ID: 0020
Revises: 0018_outreach
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0018_outreach"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "message_id",
            existing_type=sa.String(length=32),
            type_=sa.String(length=128),
            existing_nullable=True,
        )
    op.create_table(
        "whatsapp_statuses",
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("user_ref", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_whatsapp_statuses")),
    )
    op.create_index(
        "ix_whatsapp_statuses_user_ref", "whatsapp_statuses", ["user_ref"], unique=False
    )
    op.create_index(
        "ix_whatsapp_statuses_updated_at", "whatsapp_statuses", ["updated_at"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_whatsapp_statuses_updated_at", table_name="whatsapp_statuses")
    op.drop_index("ix_whatsapp_statuses_user_ref", table_name="whatsapp_statuses")
    op.drop_table("whatsapp_statuses")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "message_id",
            existing_type=sa.String(length=128),
            type_=sa.String(length=32),
            existing_nullable=True,
        )
