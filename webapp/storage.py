"""The document store: files of a visit, kept outside the web root and encrypted at rest.

``store(data) -> key``, ``load(key) -> bytes`` and ``delete(key)`` are the whole
interface; callers keep the key (``Document.storage_key``) and never see a
path. Each file is encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``, already a dependency of aiortc) under ``DOCUMENT_KEY``, or
under a key generated into the instance folder on first use, like the secret
key. A file is written to a temporary name (mode 0600) and renamed, so a crash
never leaves half a document under a real key.

Several keys may be in effect at once (``DOCUMENT_KEY=new,old`` or one key a
line in ``document_key``): the first encrypts, every one decrypts (Fernet's
``MultiFernet``). That is how ``rotate-document-key`` re-encrypts the store
without a moment where a document cannot be read. The key file is re-read when
it changes, so a running app follows a rotation without a restart.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

from .config import ConfigError
from .private_files import create_once, replacing


class DocumentMissing(LookupError):
    """No document under this key, or it cannot be decrypted with the configured key."""


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, 0600, all at once (``private_files.replacing``)."""
    with replacing(path) as fh:
        fh.write(data)


class DocumentStore:
    """``keys`` is a list of Fernet keys, the first the one that encrypts; or ``key_file``, a
    path holding them one a line, re-read when it changes."""

    def __init__(self, root: Path, key: bytes | None = None, *, keys: list[bytes] | None = None,
                 key_file: Path | None = None):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._key_file = key_file
        self._stamp = None
        self._set_keys(keys or ([key] if key else read_keys(key_file)))

    def _set_keys(self, keys: list[bytes]) -> None:
        self.keys = list(keys)
        self._multi = MultiFernet([Fernet(k) for k in self.keys])

    def _fernet(self) -> MultiFernet:
        if self._key_file is not None:
            try:
                st = self._key_file.stat()
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                stamp = None
            if stamp is not None and stamp != self._stamp:
                self._set_keys(read_keys(self._key_file))
                self._stamp = stamp
        return self._multi

    def refresh(self) -> list[bytes]:
        """The keys in effect now (the key file re-read if it changed)."""
        self._fernet()
        return self.keys

    def paths(self):
        """Every stored document's path (no temporary files)."""
        return sorted(p for p in self.root.glob("??/*") if p.is_file() and not p.name.endswith(".part"))

    def _path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise DocumentMissing(key)
        return self.root / key[:2] / key

    def store(self, data: bytes) -> str:
        """Keep ``data`` encrypted; return the key to load it again."""
        key = secrets.token_hex(20)
        path = self._path(key)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        write_private(path, self._fernet().encrypt(data))
        return key

    def load(self, key: str) -> bytes:
        try:
            return self._fernet().decrypt(self._path(key).read_bytes())
        except (OSError, InvalidToken) as exc:
            raise DocumentMissing(key) from exc

    def reencrypt(self, path: Path) -> bool:
        """Put the file at ``path`` under the first key, unless it already is; True when rewritten.

        The new file replaces the old one by a rename, so an interruption leaves one or the
        other, each readable while both keys are in effect.
        """
        token = path.read_bytes()
        try:
            Fernet(self.keys[0]).decrypt(token)
            return False
        except InvalidToken:
            pass
        write_private(path, self._fernet().rotate(token))
        return True

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (OSError, DocumentMissing):
            pass


def parse_keys(text: str, source: str = "DOCUMENT_KEY") -> list[bytes]:
    """Fernet keys separated by commas or lines, the first the one that encrypts."""
    keys = [k.strip().encode() for k in text.replace(",", "\n").splitlines() if k.strip()]
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(f"{source} must hold keys made by Fernet.generate_key() "
                              "(32 bytes, url-safe base64), separated by commas") from None
    if not keys:
        raise ConfigError(f"{source} holds no key")
    return keys


def read_keys(path: Path) -> list[bytes]:
    return parse_keys(path.read_text(), str(path))


def key_file(instance_path: Path) -> Path:
    """The instance folder's key file, made (0600) on first use."""
    path = instance_path / "document_key"
    if not path.exists():
        create_once(path, Fernet.generate_key())     # or another process made it first
    return path


def write_keys(path: Path, keys: list[bytes]) -> None:
    write_private(path, b"\n".join(keys) + b"\n")


def rotate(store: DocumentStore, path: Path | None) -> int:
    """Re-encrypt every document under a new key; return how many files were rewritten.

    With the key file (``path``): a new key is put first and the old one kept (both decrypt)
    until every file is done and checked, then the old key is dropped. Killed at any moment,
    running it again resumes: the file still holds both keys, and files already under the new
    one are skipped. With ``DOCUMENT_KEY`` (``path`` None) the operator put the new key first;
    this re-encrypts and checks, and they remove the old key afterwards.
    """
    if path is not None and len(read_keys(path)) == 1:
        write_keys(path, [Fernet.generate_key(), *read_keys(path)])
    keys = store.refresh()
    if len(keys) < 2 and path is None:
        raise ConfigError("DOCUMENT_KEY holds one key: put a new one first (DOCUMENT_KEY=new,old), "
                          "restart the app, then run this again")
    rewritten = 0
    for file in store.paths():
        rewritten += store.reencrypt(file)
    newest = Fernet(keys[0])
    unreadable = []
    for file in store.paths():       # again, with the new key alone: nothing is dropped unchecked
        try:
            newest.decrypt(file.read_bytes())
        except InvalidToken:
            if not store.reencrypt(file):
                unreadable.append(file.name)
    if unreadable:
        raise DocumentMissing(f"{len(unreadable)} documents could not be re-encrypted; the old keys stay: "
                              + ", ".join(unreadable[:5]))
    if path is not None:
        write_keys(path, [keys[0]])
        store.refresh()
    return rewritten


def open_store(instance_path: Path, configured: str) -> DocumentStore:
    """``DOCUMENT_KEY`` when set, else the key file in the instance folder."""
    root = instance_path / "documents"
    if configured:
        return DocumentStore(root, keys=parse_keys(configured))
    return DocumentStore(root, key_file=key_file(instance_path))


def init_app(app) -> None:
    app.extensions["documents"] = open_store(Path(app.instance_path), app.config.get("DOCUMENT_KEY", ""))


def documents() -> DocumentStore:
    """The store of the current app."""
    return current_app.extensions["documents"]
