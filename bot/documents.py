"""Which documents each case needs, and where their photos are kept.

The checklist follows DOMAIN.md's table. Uploads are checked by magic bytes and size, hashed
with SHA-256 and stored content-addressed; the full image checks (decompression bombs, blur,
EXIF removal, encryption at rest) join this pipeline with the Telegram channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.core.flow import Answers
from bot.core.messages import Upload
from bot.i18n import N_, _
from bot.images import ImageRules, check_declared_size, clean_document


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


def document_label(requirement: Requirement, answers: Answers) -> str:
    """Return the translated name of a document (the supporting one names its chosen kind)."""
    label = requirement.label
    if requirement.key == "supporting":
        label = SUPPORTING_LABELS.get(answers.get("supporting_kind", ""), label)
    return _(label)


# ---- uploads -------------------------------------------------------------------------------


class BlobStore(Protocol):
    """Where document bytes live; the database keeps only their hash."""

    def put(self, data: bytes) -> str:
        """Store bytes and return their key (the SHA-256 in hex)."""

    def get(self, key: str) -> bytes:
        """Return stored bytes."""


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


def accept_upload(
    upload: Upload, blobs: BlobStore, max_bytes: int, document: str | None = None
) -> dict[str, Any]:
    """Check, clean (re-encode, strip metadata) and store an upload; return its record.

    One pipeline for every channel: the declared size is refused before any download, then
    `bot.images` checks the type by magic bytes, the pixel count, damage, resolution,
    darkness and blur, and re-encodes what it keeps. `document` names the document in the
    refusals that are about its content (a blurry photo).
    """
    rules = ImageRules(max_bytes=max_bytes)
    check_declared_size(upload.declared_size, rules)
    clean = clean_document(upload.data, rules, document)
    return {"sha256": blobs.put(clean.data), "content_type": clean.content_type,
            "size": len(clean.data)}  # fmt: skip
