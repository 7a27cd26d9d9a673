"""Document photos encrypted at rest, behind the same interface as `LocalBlobStore`.

Each blob is sealed with AES-256-GCM under one document key. Keys stay the SHA-256 of the
plaintext, so identical uploads share one file and the database keeps a hash it can verify;
the file name therefore reveals that hash (not the content), as the database already does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard size; random per write (2^-32 collision risk needs 2^32 writes)
KEY_FILE_NAME = "document.key"

# Every file starts with this header, so a future format (or key rotation) can tell versions
# apart. It is also bound into the associated data, so it cannot be swapped unnoticed.
_HEADER = b"LKB1"
_TAG_BYTES = 16
_BLOB_KEY = re.compile(r"[0-9a-f]{64}")
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class EncryptedBlobStore:
    """Content-addressed files under a folder, each encrypted with AES-256-GCM."""

    def __init__(self, folder: Path, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the document key must be {KEY_BYTES} bytes, not {len(key)}")
        self.folder = folder
        self._aead = AESGCM(key)

    def _path(self, key: str) -> Path:
        # Keys come back from the database; refuse anything that is not a SHA-256 in hex so a
        # damaged or forged row cannot point outside the folder ("../..").
        if not _BLOB_KEY.fullmatch(key):
            raise ValueError(f"not a document key: {key!r}")
        return self.folder / key[:2] / key

    @staticmethod
    def _associated_data(key: str) -> bytes:
        # Binding the key into the tag means a file copied under another name fails to open.
        return _HEADER + key.encode("ascii")

    def put(self, data: bytes) -> str:
        """Encrypt and store bytes; return the SHA-256 of the plaintext in hex."""
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            # Same plaintext already stored (the nonce differs per write, so comparing
            # ciphertexts would never match; the plaintext hash is the identity).
            return key
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = _HEADER + nonce + self._aead.encrypt(nonce, data, self._associated_data(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name: two workers storing the same document at once must not
        # write into each other's half-finished file. os.replace is atomic, so readers see
        # either no file or a whole one; fsync first so a crash cannot leave an empty file.
        temporary = path.with_name(f"{key}.{secrets.token_hex(8)}.part")
        try:
            with temporary.open("wb") as handle:
                handle.write(sealed)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return key

    def delete(self, key: str) -> bool:
        """Remove a document's file from disk (erasure, retention); False when it was not there.

        The file is overwritten with zeros before it is unlinked, so the ciphertext does not
        linger in free blocks on file systems that overwrite in place (the key would open it).
        """
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError), path.open("r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink(missing_ok=True)
        return True

    def stored_keys(self) -> list[str]:
        """Every stored document's key (the retention job looks for orphans)."""
        return [p.name for p in self.folder.glob("??/*") if _BLOB_KEY.fullmatch(p.name)]

    def stored_at(self, key: str) -> float | None:
        """When a document's file was written (POSIX time), None when there is none."""
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None

    def get(self, key: str) -> bytes:
        """Return the decrypted bytes; raise ValueError if the file was altered."""
        sealed = self._path(key).read_bytes()
        if not sealed.startswith(_HEADER) or len(sealed) < len(_HEADER) + NONCE_BYTES + _TAG_BYTES:
            raise ValueError(f"document {key} is not an encrypted Loket blob")
        nonce = sealed[len(_HEADER) : len(_HEADER) + NONCE_BYTES]
        ciphertext = sealed[len(_HEADER) + NONCE_BYTES :]
        try:
            data = self._aead.decrypt(nonce, ciphertext, self._associated_data(key))
        except InvalidTag as error:
            raise ValueError(
                f"document {key} cannot be decrypted: altered, or stored under another key"
            ) from error
        # GCM already authenticates; this also catches a file encrypted from the wrong bytes.
        if hashlib.sha256(data).hexdigest() != key:
            raise ValueError(f"document {key} does not match its hash")
        return data


def _decode_key(value: str, source: str) -> bytes:
    text = value.strip()
    # The base64 decoders silently skip unknown characters and accept "+/" even when told
    # the alphabet is "-_", so check the characters first: a mistyped key must fail loudly.
    if not _URLSAFE_BASE64.fullmatch(text):
        raise ValueError(f"{source} is not URL-safe base64 (letters, digits, '-' and '_')")
    text += "=" * (-len(text) % 4)  # accept the key with or without base64 padding
    try:
        key = base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{source} is not valid URL-safe base64") from error
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{source} must encode {KEY_BYTES} bytes (URL-safe base64), it encodes {len(key)}"
        )
    return key


def generate_key() -> str:
    """Return a new random document key as URL-safe base64 (for LOKET_DOCUMENT_KEY)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def load_or_create_key(data_dir: Path, env_value: str | None) -> bytes:
    """Return the document key from the environment, else from (or into) data_dir."""
    if env_value is not None and env_value.strip():
        return _decode_key(env_value, "LOKET_DOCUMENT_KEY")
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return _decode_key(path.read_text(encoding="ascii"), str(path))


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write the whole key to a private temporary file, then link it into place: linking fails
    # if the file already exists, so two processes starting together cannot each keep a
    # different key (documents sealed by the loser would be unreadable), and nobody ever
    # reads a half-written key file.
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(8)}.part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exactly 0o600, whatever the umask
            handle.write(generate_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # FileExistsError: another process created it first; everyone uses theirs.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
