"""release modes per office, the waiting room's queues, walk-in mode

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("offices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "release_mode", sa.String(length=16), server_default="first_come", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("admit_per_minute", sa.Integer(), server_default="60", nullable=False)
        )
        batch_op.add_column(
            sa.Column("admit_minutes", sa.Integer(), server_default="5", nullable=False)
        )
        batch_op.add_column(
            sa.Column("walk_in_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("walk_in_quota", sa.Integer(), nullable=True))
    op.create_table(
        "release_queues",
        sa.Column("office_id", BIG_ID, nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name=op.f("fk_release_queues_office_id_offices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("office_id", "release_at", name=op.f("pk_release_queues")),
    )
    op.create_table(
        "queue_entries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("office_id", BIG_ID, nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("nik", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("application_id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("account_ref", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_queue_entries_application_id_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name=op.f("fk_queue_entries_office_id_offices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_entries")),
        sa.UniqueConstraint(
            "office_id",
            "release_at",
            "nik",
            "attempt",
            name=op.f("uq_queue_entries_office_id_release_at_nik_attempt"),
        ),
        sa.UniqueConstraint(
            "office_id",
            "release_at",
            "number",
            name=op.f("uq_queue_entries_office_id_release_at_number"),
        ),
    )
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.create_index("ix_queue_entries_account", ["channel", "account_ref"], unique=False)
        batch_op.create_index(
            "ix_queue_entries_office_status",
            ["office_id", "release_at", "status", "number"],
            unique=False,
        )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("queue_entries")
    op.drop_table("release_queues")
    with op.batch_alter_table("offices", schema=None) as batch_op:
        batch_op.drop_column("walk_in_quota")
        batch_op.drop_column("walk_in_only")
        batch_op.drop_column("admit_minutes")
        batch_op.drop_column("admit_per_minute")
        batch_op.drop_column("release_mode")
