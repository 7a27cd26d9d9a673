"""personal data (UU PDP): when an application closed, lost its photos, was anonymised

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("documents_deleted_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("anonymised_at")
        batch.drop_column("documents_deleted_at")
        batch.drop_column("closed_at")
