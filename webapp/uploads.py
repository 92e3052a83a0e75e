"""Files people send and download: the type judged by content, a safe name, one way to store
a document, a careful download.

Shared by the call's file exchange, the closing checklist, the report and the patient's space.
"""
from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from urllib.parse import quote

from flask import abort, send_file
from flask_babel import gettext as _

from .models import AuditEvent, Document, db
from .storage import DocumentMissing, documents

# (leading bytes, content type, extension); never the name or the browser's claimed type.
SIGNATURES = ((b"%PDF-", "application/pdf", "pdf"), (b"\xff\xd8\xff", "image/jpeg", "jpg"),
              (b"\x89PNG\r\n\x1a\n", "image/png", "png"))
# HEIC (iPhone photos) is an ISO-BMFF "ftyp" box with a HEIF brand.
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
STEM_MAX = 100


def sniff(data: bytes, heic: bool = True) -> tuple[str, str] | None:
    """(content type, extension) of a PDF, JPEG, PNG (or HEIC) judged by its first bytes; None otherwise."""
    for magic, content_type, extension in SIGNATURES:
        if data.startswith(magic):
            return content_type, extension
    if heic and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "image/heic", "heic"
    return None


def clean_filename(raw: str, extension: str) -> str:
    """A name safe to show and to offer for download: no path, control characters or markup,
    a stem of at most 100 characters, and the extension of what the file really is."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] in "LN" or c in " ._-()")
    name = re.sub(r"\s+", " ", name).strip(" .")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    # Translators: a word in a file name, for a file whose name had no usable letters: lowercase, no punctuation
    stem = stem[:STEM_MAX].strip(" .") or _("document")
    return f"{stem}.{extension}"


def dated_filename(word: str, day, extension: str) -> str:
    """A document's name from a word in the reader's language and a date: "compte-rendu-2036-06-10.pdf"."""
    return clean_filename("-".join(str(word).split()) + f"-{day:%Y-%m-%d}", extension)


def content_disposition(filename: str) -> str:
    """An attachment header for any name: an ASCII fallback, and the real name (RFC 6266) for
    words in other scripts, which a plain header cannot carry."""
    fallback = filename.encode("ascii", "ignore").decode().replace('"', "") or "download"
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def store_document(appt, data: bytes, *, filename: str, content_type: str, source: str, kind: str,
                   author: str, user=None, locale: str = "", audit: tuple | None = None) -> Document:
    """Encrypt and write the bytes, then record the Document (and its audit event, ``(actor, action)``).

    When the database write fails (or the caller's transaction around it), the written file is
    removed again, so the store never keeps a file no row points to.
    """
    key = documents().store(data)
    try:
        with db.atomic():
            doc = Document.create(appointment=appt, source=source, kind=kind, author=author, user=user,
                                  filename=filename, content_type=content_type, size=len(data),
                                  sha256=hashlib.sha256(data).hexdigest(), storage_key=key, locale=locale)
            if audit is not None:
                AuditEvent.record(audit[0], audit[1], appt, detail=f"document {doc.id}")
    except BaseException:
        documents().delete(key)
        raise
    return doc


def document_download(doc):
    """The stored document as an attachment that no browser sniffs or caches.

    Raises ``storage.DocumentMissing`` when its bytes cannot be read."""
    data = documents().load(doc.storage_key)
    response = send_file(io.BytesIO(data), mimetype=doc.content_type, as_attachment=True,
                         download_name=doc.filename, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def audited_download(doc, appt, actor, action: str = "document.downloaded"):
    """``document_download`` for a person who may read it: a document whose bytes are gone is a 404,
    and each download is audited (the document's id only)."""
    try:
        response = document_download(doc)
    except DocumentMissing:
        abort(404)
    AuditEvent.record(actor, action, appt, detail=f"document {doc.id}")
    return response
