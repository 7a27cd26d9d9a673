"""Typed SQLAlchemy 2 models: the system of record for conversations and applications."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations get stable constraint names."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


Base.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ApplicationStatus(StrEnum):
    """Where an application is in its journey; only the open ones block a NIK."""

    REGISTERED = "registered"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


CLOSED_STATUSES = (ApplicationStatus.CANCELLED, ApplicationStatus.COMPLETED)
_OPEN_SQL = "status NOT IN ('cancelled', 'completed')"


class Conversation(Base):
    """One chat identity's conversation state, saved after every turn."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "user_ref"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_ref: Mapped[str] = mapped_column(String(128))
    locale: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_activity_at: Mapped[datetime | None]


class Application(Base):
    """A submitted passport application (one person), owned by a chat account."""

    __tablename__ = "applications"
    __table_args__ = (
        # A NIK may have only one open application, whichever account or channel made it.
        Index(
            "uq_applications_open_nik",
            "nik",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
        Index("ix_applications_account", "channel", "account_ref"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    reg_number: Mapped[str] = mapped_column(String(16), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    account_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24), default=ApplicationStatus.REGISTERED)

    service: Mapped[str] = mapped_column(String(16))
    application_type: Mapped[str] = mapped_column(String(16))
    replacement_reason: Mapped[str | None] = mapped_column(String(16))
    passport_kind: Mapped[str] = mapped_column(String(16))
    validity_years: Mapped[int]
    category: Mapped[str] = mapped_column(String(8))

    nik: Mapped[str] = mapped_column(String(16), index=True)
    full_name: Mapped[str] = mapped_column(String(120))
    birth_place: Mapped[str] = mapped_column(String(80))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    phone: Mapped[str] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(300))
    travel_purpose: Mapped[str] = mapped_column(String(24))
    old_passport_number: Mapped[str | None] = mapped_column(String(12))
    name_changed: Mapped[bool] = mapped_column(default=False)

    fee_amount: Mapped[int]
    fee_schedule: Mapped[str] = mapped_column(String(40))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    documents: Mapped[list[Document]] = relationship(
        back_populates="application", cascade="all, delete-orphan", order_by="Document.id"
    )


class Document(Base):
    """A document photo attached to an application; the bytes live in the blob store."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    application: Mapped[Application] = relationship(back_populates="documents")
