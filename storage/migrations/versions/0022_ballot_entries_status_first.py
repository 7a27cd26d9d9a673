"""ballot entries: the status index starts with the status

As for the queue tables (0021): a NIK's entry is looked up by (ballot_id, nik) at every ballot
tap, and while statistics lag behind an entry window the planner could take an index starting
with ballot_id that does not find the NIK. Now no two indexes of ballot_entries start alike.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 21:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.drop_index("ix_ballot_entries_status", table_name="ballot_entries")
    op.create_index(
        "ix_ballot_entries_status", "ballot_entries", ["status", "ballot_id", "position"]
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_ballot_entries_status", table_name="ballot_entries")
    op.create_index(
        "ix_ballot_entries_status", "ballot_entries", ["ballot_id", "status", "position"]
    )
