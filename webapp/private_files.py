"""Files only the server's user may read: made 0600 from the first byte, whatever the umask.

Shared by the instance's secrets (secret key, document key, SQLite file), the document
store and backups.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path


def create_once(path: Path, data: bytes = b"") -> bool:
    """Make ``path`` holding ``data`` unless it exists; False when it did (another process may
    have just made it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return True


@contextlib.contextmanager
def replacing(path: Path):
    """A binary file to write that replaces ``path`` once complete: written to ``<path>.part``
    (0600), fsynced, then renamed, so a reader sees the old file or the new one, never half of
    it; removed again if the writing fails."""
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)         # a .part left by an earlier attempt keeps its old mode otherwise
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
