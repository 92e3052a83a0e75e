"""The document store: files of a visit, kept outside the web root and encrypted at rest.

``store(data) -> key``, ``load(key) -> bytes`` and ``delete(key)`` are the whole
interface; callers keep the key (``Document.storage_key``) and never see a
path. Each file is encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``, already a dependency of aiortc) under ``DOCUMENT_KEY``, or
under a key generated into the instance folder on first use, like the secret
key. A file is written to a temporary name and renamed, so a crash never
leaves half a document under a real key.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from .config import ConfigError


class DocumentMissing(LookupError):
    """No document under this key, or it cannot be decrypted with the configured key."""


class DocumentStore:
    def __init__(self, root: Path, key: bytes):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fernet = Fernet(key)

    def _path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise DocumentMissing(key)
        return self.root / key[:2] / key

    def store(self, data: bytes) -> str:
        """Keep ``data`` encrypted; return the key to load it again."""
        key = secrets.token_hex(20)
        path = self._path(key)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".part")
        with open(tmp, "wb") as fh:
            fh.write(self._fernet.encrypt(data))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        return key

    def load(self, key: str) -> bytes:
        try:
            return self._fernet.decrypt(self._path(key).read_bytes())
        except (OSError, InvalidToken) as exc:
            raise DocumentMissing(key) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (OSError, DocumentMissing):
            pass


def document_key(instance_path: Path, configured: str) -> bytes:
    """``DOCUMENT_KEY`` when set (a Fernet key), else one generated into the instance folder."""
    if configured:
        try:
            Fernet(configured.encode())
        except ValueError:
            raise ConfigError("DOCUMENT_KEY must be a key made by Fernet.generate_key() "
                              "(32 bytes, url-safe base64)") from None
        return configured.encode()
    path = instance_path / "document_key"
    if not path.exists():
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_bytes().strip()


def init_app(app) -> None:
    instance = Path(app.instance_path)
    app.extensions["documents"] = DocumentStore(instance / "documents",
                                                document_key(instance, app.config.get("DOCUMENT_KEY", "")))


def documents() -> DocumentStore:
    """The store of the current app."""
    return current_app.extensions["documents"]
