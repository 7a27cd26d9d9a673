"""Which documents each case needs, and where their photos are kept.

The checklist follows DOMAIN.md's table. Uploads are checked and re-encoded by `bot.images`
before the turn (`Loket` calls `check_event`), then stored content-addressed (SHA-256) and
encrypted at rest; only photos are accepted, on every channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.core.flow import Answers, Invalid
from bot.core.messages import EventKind, Inbound, Upload
from bot.core.ports import BlobStore as BlobStore  # the port this module implements
from bot.i18n import N_, _
from bot.images import CleanDocument, ImageRules, MemoryBudget, Refusal, check_upload
from bot.settings import Settings


@dataclass(frozen=True)
class Requirement:
    """One document of the checklist and the cases it applies to."""

    key: str
    label: str
    hint: str
    applies: Callable[[Answers], bool]
    optional: bool = False


def _adult(a: Answers) -> bool:
    return a.get("category") == "adult"


def _child(a: Answers) -> bool:
    return a.get("category") == "child"


def _reason(a: Answers) -> str | None:
    return a.get("replace_reason") if a.get("had_passport") == "yes" else None


SUPPORTING_LABELS = {
    "birth_cert": N_("Akta kelahiran"),
    "marriage": N_("Akta/buku nikah"),
    "diploma": N_("Ijazah"),
    "baptism": N_("Surat baptis"),
}

REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "ktp", N_("e-KTP"), N_("Foto e-KTP asli, seluruh kartu terlihat dan tidak silau."), _adult
    ),
    Requirement(
        "kk",
        N_("Kartu Keluarga"),
        N_("Foto Kartu Keluarga, seluruh halaman terlihat dan tulisan terbaca."),
        lambda a: _child(a) or (_adult(a) and _reason(a) != "expired"),
    ),
    Requirement(
        "supporting",
        N_("Dokumen pendukung"),
        N_("Foto halaman yang memuat nama, tempat dan tanggal lahir."),
        lambda a: _adult(a) and a.get("had_passport") == "no",
    ),
    Requirement(
        "old_passport",
        N_("Paspor lama"),
        N_("Foto halaman data (halaman dengan foto dan nomor paspor)."),
        lambda a: _reason(a) == "expired",
    ),
    Requirement(
        "police_report",
        N_("Surat keterangan hilang dari kepolisian"),
        N_("Foto surat kehilangan dari kepolisian, seluruh halaman terlihat."),
        lambda a: _reason(a) == "lost",
    ),
    Requirement(
        "damaged_passport",
        N_("Paspor yang rusak"),
        N_("Foto halaman data paspor yang rusak."),
        lambda a: _reason(a) == "damaged",
    ),
    Requirement(
        "child_birth_cert",
        N_("Akta kelahiran anak"),
        N_("Foto akta kelahiran anak, seluruh halaman terlihat."),
        _child,
    ),
    Requirement("father_ktp", N_("KTP ayah"), N_("Foto e-KTP ayah."), _child),
    Requirement("mother_ktp", N_("KTP ibu"), N_("Foto e-KTP ibu."), _child),
    Requirement(
        "parents_marriage",
        N_("Buku nikah orang tua"),
        N_("Foto halaman buku nikah yang memuat nama kedua orang tua."),
        _child,
    ),
    Requirement(
        "parents_statement",
        N_("Surat pernyataan orang tua"),
        N_("Foto surat pernyataan yang ditandatangani kedua orang tua."),
        _child,
    ),
    Requirement(
        "parents_passport",
        N_("Paspor orang tua"),
        N_('Foto halaman data paspor ayah atau ibu, bila ada. Ketik "lewati" bila tidak ada.'),
        _child,
        optional=True,
    ),
    Requirement(
        "court_order",
        N_("Penetapan pengadilan tentang perubahan nama"),
        N_("Foto penetapan pengadilan yang menyatakan perubahan nama."),
        lambda a: a.get("had_passport") == "yes" and a.get("name_same") == "no",
    ),
)


def required_documents(answers: Answers) -> list[Requirement]:
    """Return the checklist for these answers, in the order it is asked."""
    return [r for r in REQUIREMENTS if r.applies(answers)]


def missing_documents(answers: Answers, present: Iterable[str]) -> list[Requirement]:
    """Return the checklist's documents still to come (optional ones never are missing)."""
    have = set(present)
    return [r for r in required_documents(answers) if not r.optional and r.key not in have]


# Documents shared within a family: a parent's KTP is on each child's application, spouses
# register from their own phones with the same Kartu Keluarga and marriage book. A near copy
# of any other document on another NIK's application is refused (one photo, many "people").
FAMILY_DOCUMENTS = frozenset(
    {"kk", "father_ktp", "mother_ktp", "parents_marriage", "parents_statement",
     "parents_passport"}
)  # fmt: skip


def is_personal(key: str, answers: Answers) -> bool:
    """Tell whether a document belongs to the applicant alone (a marriage book does not)."""
    if key == "supporting":
        return answers.get("supporting_kind") != "marriage"
    return key not in FAMILY_DOCUMENTS


def document_label(requirement: Requirement, answers: Answers) -> str:
    """Return the translated name of a document (the supporting one names its chosen kind)."""
    label = requirement.label
    if requirement.key == "supporting":
        label = SUPPORTING_LABELS.get(answers.get("supporting_kind", ""), label)
    return _(label)


# ---- uploads -------------------------------------------------------------------------------


class LocalBlobStore:
    """Content-addressed plain files under a folder (tests and tools; documents are encrypted)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def put(self, data: bytes) -> str:
        """Store bytes and return their SHA-256 in hex."""
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".part")
            temporary.write_bytes(data)
            temporary.replace(path)
        return key

    def get(self, key: str) -> bytes:
        """Return stored bytes."""
        return self._path(key).read_bytes()

    def delete(self, key: str) -> bool:
        """Remove stored bytes from disk; False when they were not there."""
        path = self._path(key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def stored_keys(self) -> list[str]:
        """Every stored key."""
        return [p.name for p in self.folder.glob("??/*") if len(p.name) == 64]

    def stored_at(self, key: str) -> float | None:
        """When a key's bytes were written (POSIX time), None when there are none."""
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None


def upload_rules(settings: Settings) -> ImageRules:
    """Return the photo rules these settings ask for."""
    return ImageRules(
        max_bytes=settings.max_upload_bytes, memory_budget=settings.image_memory_budget
    )


def needs_check(event: Inbound) -> bool:
    """Tell whether the event carries an upload not yet checked."""
    return (
        event.kind is EventKind.FILE and event.upload is not None and event.upload.checked is None
    )


def check_event(event: Inbound, rules: ImageRules, budget: MemoryBudget | None) -> Inbound:
    """Return the event with its upload checked and cleaned (other events unchanged).

    The slow part of accepting a photo (decoding, measuring, re-encoding), run before the
    turn's transaction: a decode never holds the conversation's lock or SQLite's write lock.
    One pipeline for every channel: the declared size is refused before any download, then
    `bot.images` checks the type by magic bytes, the pixel count, the memory a decode would
    take, damage, resolution, darkness and blur, and re-encodes what it keeps.
    """
    upload = event.upload
    if not needs_check(event) or upload is None:
        return event
    checked = check_upload(upload.data, rules, upload.declared_size, budget)
    # The original bytes are not needed any more: only the re-encoded photo is ever stored.
    return replace(event, upload=replace(upload, data=b"", checked=checked))


def photo_reused_message(document: str) -> str:
    """Refuse the applicant's own document photo found on another NIK's application."""
    return _(
        "Foto {document} ini sudah dipakai dalam permohonan atas NIK lain. Kirim foto "
        "{document} milik pemohon sendiri."
    ).format(document=document)


def accept_upload(
    upload: Upload,
    blobs: BlobStore,
    document: str | None = None,
    *,
    personal: bool = False,
    owner: str | None = None,
) -> dict[str, Any]:
    """Store an upload the pipeline accepted and return its record, or raise its refusal.

    `document` names the document in the refusals that are about its content (a blurry
    photo). The upload must have been through `check_event` (the service does it for every
    inbound event). A `personal` document (the applicant's own, see `is_personal`) is
    refused when a near copy of its photo is on the application of a NIK other than `owner`.
    """
    checked = upload.checked
    if isinstance(checked, Refusal):
        raise Invalid(checked.reason(document))
    if not isinstance(checked, CleanDocument):
        raise RuntimeError("an upload reached a turn unchecked (see check_event)")
    if personal and any(nik != owner for nik in checked.twins):
        raise Invalid(photo_reused_message(document or _("dokumen")))
    record: dict[str, Any] = {
        "sha256": blobs.put(checked.data),
        "content_type": checked.content_type,
        "size": len(checked.data),
    }
    if checked.phash is not None:
        record["phash"] = f"{checked.phash:016x}"
    return record
