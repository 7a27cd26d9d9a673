"""paspor keliling: outreach sessions (slots link to them), Eazy Passport requests, members

Revision ID: 0018_outreach
Revises: 0017
Create Date: 2026-12-02 05:47:16.830569
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_outreach"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "outreach_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "office_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("organisation", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact_name", sa.String(length=120), nullable=False),
        sa.Column("contact_phone", sa.String(length=20), nullable=False),
        sa.Column("contact_email", sa.String(length=254), nullable=True),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("preferred_dates", sa.String(length=200), nullable=False),
        sa.Column("venue", sa.String(length=120), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("city", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_day", sa.Date(), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("group_code", sa.String(length=16), nullable=True),
        sa.Column(
            "session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["staff.id"], name=op.f("fk_outreach_requests_created_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name=op.f("fk_outreach_requests_office_id_offices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_requests")),
        sa.UniqueConstraint("group_code", name=op.f("uq_outreach_requests_group_code")),
    )
    op.create_table(
        "outreach_members",
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("user_ref", sa.String(length=128), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["outreach_requests.id"],
            name=op.f("fk_outreach_members_request_id_outreach_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "request_id", "channel", "user_ref", name=op.f("pk_outreach_members")
        ),
    )
    op.create_table(
        "outreach_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "office_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("venue", sa.String(length=120), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("city", sa.String(length=60), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=False),
        sa.Column("longitude", sa.Double(), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("documents", sa.String(length=500), nullable=True),
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["staff.id"], name=op.f("fk_outreach_sessions_created_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name=op.f("fk_outreach_sessions_office_id_offices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["outreach_requests.id"],
            name=op.f("fk_outreach_sessions_request_id_outreach_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_sessions")),
    )
    op.add_column("slots", sa.Column("outreach_id", BIG_ID, nullable=True))
    op.create_index("ix_slots_outreach_id", "slots", ["outreach_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""

    op.drop_index("ix_slots_outreach_id", table_name="slots")
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_column("outreach_id")

    op.drop_table("outreach_sessions")
    op.drop_table("outreach_members")
    op.drop_table("outreach_requests")
