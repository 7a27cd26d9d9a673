"""ballot (undian) release mode: ballots with committed seeds, their entries

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "ballots",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("office_id", BIG_ID, nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("draw_order", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["office_id"], ["offices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ballots_office", "ballots", ["office_id", "id"], unique=False)
    op.create_table(
        "ballot_entries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("ballot_id", BIG_ID, nullable=False),
        sa.Column("nik", sa.String(length=16), nullable=False),
        sa.Column("application_id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("account_ref", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("booking_id", BIG_ID, nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"]),
        sa.ForeignKeyConstraint(["ballot_id"], ["ballots.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ballot_id", "nik"),
    )
    op.create_index(
        "ix_ballot_entries_status",
        "ballot_entries",
        ["ballot_id", "status", "position"],
        unique=False,
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_ballot_entries_status", table_name="ballot_entries")
    op.drop_table("ballot_entries")
    op.drop_index("ix_ballots_office", table_name="ballots")
    op.drop_table("ballots")
