"""queue keys that stay right while statistics lag behind a release

At a release, tickets and entries arrive faster than PostgreSQL gathers statistics; the
planner then believes the new release holds about one row and, offered several indexes that
start with (office_id, release_at), took one that does not find the chat or NIK, reading the
whole release per tap. Now no two indexes of a queue table start with the same column.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ISSUED = sa.text("status = 'issued'")
# (table, old unique constraints, old index, new unique constraints, new index)
KEYS = {
    "queue_tickets": (
        [["office_id", "release_at", "channel", "account_ref"],
         ["office_id", "release_at", "number"]],
        ("ix_queue_tickets_status", ["office_id", "release_at", "status", "number"]),
        [["channel", "account_ref", "office_id", "release_at"],
         ["number", "office_id", "release_at"]],
    ),
    "queue_entries": (
        [["office_id", "release_at", "number"],
         ["office_id", "release_at", "nik", "attempt"]],
        ("ix_queue_entries_office_status", ["office_id", "release_at", "status", "number"]),
        [["number", "office_id", "release_at"],
         ["nik", "office_id", "release_at", "attempt"]],
    ),
}  # fmt: skip
ENTRIES_STATUS = ("ix_queue_entries_status", ["status", "office_id", "release_at", "number"])


def _name(table: str, columns: list[str]) -> str:
    return f"uq_{table}_{'_'.join(columns)}"


def _swap_keys(table: str, drop: list[list[str]], make: list[list[str]]) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for columns in drop:
            batch_op.drop_constraint(_name(table, columns), type_="unique")
        for columns in make:
            batch_op.create_unique_constraint(_name(table, columns), columns)


def upgrade() -> None:
    """Apply this revision."""
    for table, (old_keys, (old_index, _columns), new_keys) in KEYS.items():
        op.drop_index(old_index, table_name=table)
        _swap_keys(table, old_keys, new_keys)
    # Made after the batches: SQLite's table copy would not carry a partial index's condition.
    op.create_index(
        "ix_queue_tickets_issued",
        "queue_tickets",
        ["office_id", "release_at", "number"],
        unique=False,
        postgresql_where=ISSUED,
        sqlite_where=ISSUED,
    )
    op.create_index(ENTRIES_STATUS[0], "queue_entries", ENTRIES_STATUS[1], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(ENTRIES_STATUS[0], table_name="queue_entries")
    op.drop_index("ix_queue_tickets_issued", table_name="queue_tickets")
    for table, (old_keys, (old_index, columns), new_keys) in KEYS.items():
        _swap_keys(table, new_keys, old_keys)
        op.create_index(old_index, table, columns, unique=False)
