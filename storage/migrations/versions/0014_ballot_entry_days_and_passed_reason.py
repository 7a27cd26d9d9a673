"""ballot entries: the dates an entrant chose, and why a waitlisted entrant was passed over

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("ballot_entries", sa.Column("days", sa.JSON(), nullable=True))
    op.add_column("ballot_entries", sa.Column("passed_reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("ballot_entries", "passed_reason")
    op.drop_column("ballot_entries", "days")
