"""Transactional operations on applications. Every function takes the caller's session."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import cast

from sqlalchemy import and_, func, or_, select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import (
    CLOSED_STATUSES,
    Application,
    Booking,
    Document,
    PhoneVerification,
    PhotoMark,
)

HASH_BANDS = 8  # a 64-bit photo hash in 8 bands of 8 bits (bot.images.hash_bands)
# The largest Hamming distance the band index finds for sure (pigeonhole: two hashes this close
# share a band exactly); bot.images.NEAR_DISTANCE, the distance at which two photos are the
# same photo, is this.
NEAR_WITHIN = HASH_BANDS - 1
_PHOTO_LOCKS = 0x70686F74  # advisory-lock namespace of photo bands ("phot")

# Crockford's base32: no I, L, O or U, so a number read over the phone is unambiguous.
REG_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


class PhotoReused(Exception):
    """A personal document's photo is a near copy of one on another NIK's application. Found
    when the photo is claimed (at submission, or when it arrives later through a caller's
    upload link): the check at upload time reads only what was claimed before, so two
    registrations uploading the same photo at once would both pass it."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class NikAlreadyOpen(Exception):
    """The NIK already has an open application (possibly made through another account)."""


def new_reg_number() -> str:
    """Return a fresh random registration number such as `LK-7QH3-K9WD`."""
    body = "".join(secrets.choice(REG_ALPHABET) for _ in range(8))
    return f"LK-{body[:4]}-{body[4:]}"


def normalize_reg_number(text: str) -> str | None:
    """Read a registration number as typed (any case, spaces, O for 0); None when it is not one."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum()).translate(_READ_AS)
    if cleaned.startswith("1K"):  # "LK" typed in lower case becomes "1K" after the mapping
        cleaned = "LK" + cleaned[2:]
    if len(cleaned) != 10 or not cleaned.startswith("LK"):
        return None
    body = cleaned[2:]
    if any(ch not in REG_ALPHABET for ch in body):
        return None
    return f"LK-{body[:4]}-{body[4:]}"


def normalize_booking_code(text: str) -> str | None:
    """Read a booking code as typed or scanned (any case, with or without dashes or spaces, O for
    0); None when it is not one. Check-in, search and every other place a code is typed use this."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(cleaned) != 10 or not cleaned.startswith("BK"):
        return None
    body = cleaned[2:].translate(_READ_AS)
    if any(ch not in REG_ALPHABET for ch in body):
        return None
    return f"BK-{body[:4]}-{body[4:]}"


def normalize_billing_code(text: str) -> str | None:
    """Read a 15-digit billing code as typed (spaces, dots or dashes between groups); None when
    it is not one."""
    cleaned = "".join(ch for ch in text if not ch.isspace() and ch not in ".-")
    if len(cleaned) != 15 or not (cleaned.isascii() and cleaned.isdigit()):
        return None
    return cleaned


def open_application_for_nik(session: Session, nik: str) -> Application | None:
    """Return the open application holding this NIK, if any."""
    statement = select(Application).where(
        Application.nik == nik, Application.status.not_in(CLOSED_STATUSES)
    )
    return session.execute(statement).scalar_one_or_none()


def count_open_for_account(session: Session, channel: str, account_ref: str) -> int:
    """Count the open applications one chat account has made (the family limit)."""
    statement = select(func.count(Application.id)).where(
        Application.channel == channel,
        Application.account_ref == account_ref,
        Application.status.not_in(CLOSED_STATUSES),
    )
    return int(session.execute(statement).scalar_one())


def applications_for_account(
    session: Session,
    channel: str,
    account_ref: str,
    *,
    status: str | None = None,
    only_open: bool = False,
    newest_first: bool = True,
) -> Sequence[Application]:
    """List one chat account's applications, optionally by status or only the open ones."""
    statement = select(Application).where(
        Application.channel == channel, Application.account_ref == account_ref
    )
    if status is not None:
        statement = statement.where(Application.status == status)
    if only_open:
        statement = statement.where(Application.status.not_in(CLOSED_STATUSES))
    order = Application.id.desc() if newest_first else Application.id
    return session.execute(statement.order_by(order)).scalars().all()


@dataclass(frozen=True)
class DocumentRecord:
    """A stored document photo to attach to a new application."""

    kind: str
    sha256: str
    content_type: str
    size: int
    phash: int | None = None  # 64-bit perceptual hash of the cleaned photo
    personal: bool = False  # the applicant's own document: indexed for reuse by other NIKs


def _bands(phash: int) -> list[int]:
    return [(phash >> (8 * (HASH_BANDS - 1 - band))) & 0xFF for band in range(HASH_BANDS)]


def photo_twins(session: Session, phash: int, within: int) -> list[str]:
    """Return the NIKs of applications with a personal document photo near this hash.

    Two 64-bit hashes within Hamming distance 7 share at least one 8-bit band exactly, so
    the candidates come from the (band, value) index; the exact distance is checked here.
    """
    match = or_(*(and_(PhotoMark.band == band, PhotoMark.value == value)
                  for band, value in enumerate(_bands(phash))))  # fmt: skip
    rows = session.execute(
        select(Application.nik, Document.phash)
        .select_from(PhotoMark)
        .join(Document, Document.id == PhotoMark.document_id)
        .join(Application, Application.id == Document.application_id)
        .where(match)
        .distinct()
    ).all()
    near = {nik for nik, other in rows if other and (int(other, 16) ^ phash).bit_count() <= within}
    return sorted(near)


def create_application(
    session: Session, application: Application, documents: Sequence[DocumentRecord]
) -> Application:
    """Insert the application with a unique registration number and its documents.

    Raises `NikAlreadyOpen` when the partial unique index on the NIK refuses it: the check
    the conversation made earlier can be overtaken by a concurrent registration.
    """
    for document in documents:
        application.documents.append(
            Document(
                kind=document.kind,
                sha256=document.sha256,
                content_type=document.content_type,
                size=document.size,
                phash=None if document.phash is None else f"{document.phash:016x}",
            )
        )
    if open_application_for_nik(session, application.nik) is not None:
        raise NikAlreadyOpen(application.reg_number)
    for _attempt in range(5):
        application.reg_number = new_reg_number()
        try:
            with session.begin_nested():
                session.add(application)
                session.flush()
                _claim_photos(
                    session, application.nik, zip(application.documents, documents, strict=True)
                )
            return application
        except IntegrityError as error:
            if open_application_for_nik(session, application.nik) is not None:
                raise NikAlreadyOpen(application.reg_number) from error
            # Otherwise a registration-number collision (1 in 10^12): draw again.
    raise RuntimeError("could not draw a unique registration number")


def _claim_photos(
    session: Session, nik: str, documents: Iterable[tuple[Document, DocumentRecord]]
) -> None:
    """Index the bands of the personal documents' photo hashes (family ones are shared),
    unless a near copy is on the application of a NIK other than `nik`: then raise
    `PhotoReused`. `documents` pairs each stored (flushed) document with its record.

    Near copies share a band exactly, so on PostgreSQL a transaction lock on each of the
    photo's (band, value) pairs, taken in one order, makes two claims of near copies (two
    submissions, a submission and a late upload, two late uploads) wait for each other; the
    second then finds the first's marks. SQLite has one writer, and this transaction already
    wrote the document."""
    personal = [(stored, record) for stored, record in documents
                if record.personal and record.phash is not None]  # fmt: skip
    if not personal:
        return
    if session.get_bind().dialect.name == "postgresql":
        keys = sorted({band * 256 + value for _stored, record in personal
                       for band, value in enumerate(_bands(cast(int, record.phash)))})  # fmt: skip
        for key in keys:
            session.execute(
                text("SELECT pg_advisory_xact_lock(:space, :key)"),
                {"space": _PHOTO_LOCKS, "key": key},
            )
    for stored, record in personal:
        phash = cast(int, record.phash)
        if any(other != nik for other in photo_twins(session, phash, NEAR_WITHIN)):
            raise PhotoReused(record.kind)
        session.add_all(
            PhotoMark(document_id=stored.id, band=band, value=value)
            for band, value in enumerate(_bands(phash))
        )
    session.flush()


def attach_document(session: Session, application: Application, record: DocumentRecord) -> bool:
    """Add a document that arrived after submission (the caller's upload link); False when
    one of that kind is already there (a repeated upload changes nothing). Raises
    `PhotoReused` when a near copy of a personal photo is on another NIK's application,
    claimed under the same locks as a submission's (see `_claim_photos`)."""
    if any(document.kind == record.kind for document in application.documents):
        return False
    stored = Document(
        kind=record.kind,
        sha256=record.sha256,
        content_type=record.content_type,
        size=record.size,
        phash=None if record.phash is None else f"{record.phash:016x}",
    )
    application.documents.append(stored)
    session.flush()
    _claim_photos(session, application.nik, [(stored, record)])
    return True


def find_callers(
    session: Session,
    *,
    phone: str | None = None,
    nik: str | None = None,
    name: str | None = None,
    birth_date: date | None = None,
) -> list[Application]:
    """Find a caller's applications, newest first, across every channel.

    By phone: the number typed in any registration (web chat, Telegram, chat API, earlier
    calls), the number a seat was held with, and every account that proved the number (a
    Telegram shared contact, a gateway's word, a one-time code, an agent). By NIK. By name
    and birth date together (a name alone matches too many people).
    """
    conditions = []
    if phone:
        accounts = select(PhoneVerification.channel, PhoneVerification.user_ref).where(
            PhoneVerification.phone == phone
        )
        conditions += [
            Application.phone == phone,
            Application.id.in_(select(Booking.application_id).where(Booking.phone == phone)),
            tuple_(Application.channel, Application.account_ref).in_(accounts),
        ]
    if nik:
        conditions.append(Application.nik == nik)
    if name and birth_date:
        conditions.append(and_(Application.full_name == name, Application.birth_date == birth_date))
    if not conditions:
        return []
    statement = select(Application).where(or_(*conditions)).order_by(Application.id.desc())
    return list(session.execute(statement.limit(50)).scalars())
