"""Files exchanged during the call, both ways, over plain HTTP.

The type is decided by the bytes (magic numbers), never by the name or the
browser's content type; the name is cleaned for display. The file goes to the
encrypted document store, then is announced on the visit's channel so it
appears in the other side's chat at once.
"""
from __future__ import annotations

from flask import abort, g, jsonify, redirect, request, url_for
from flask_babel import gettext as _

from ..access import current_appointment, own_visit_or_403
from ..answers import no_store
from ..auth import staff_required
from ..models import AuditEvent, Document
from ..storage import DocumentMissing
from ..uploads import clean_filename, document_download, sniff, store_document
from . import bp
from .bridge import publish_file
from .pages import render_call

class UploadRefused(ValueError):
    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message, self.status = message, status


def read_upload(max_mb: int) -> tuple[bytes, str, str]:
    """The uploaded bytes, their type and a clean name; UploadRefused says why not."""
    upload = request.files.get("file")
    if upload is None:
        raise UploadRefused(_("Choose a file to send."))
    limit = max_mb * 1024 * 1024
    try:
        data = upload.stream.read(limit + 1)
    finally:
        upload.close()      # a large upload is spooled to a temporary file
    if not data:
        raise UploadRefused(_("This file is empty."))
    if len(data) > limit:
        raise UploadRefused(_("The file is too large: at most %(n)s MB.", n=max_mb), 413)
    kind = sniff(data)
    if kind is None:
        raise UploadRefused(_("Only PDF, JPEG, PNG and HEIC files can be sent."))
    return data, kind[0], clean_filename(upload.filename or "", kind[1])


def store_upload(appt, author: str, user=None) -> Document:
    data, content_type, name = read_upload(appt.practice.max_upload_mb)
    doc = store_document(appt, data, filename=name, content_type=content_type, source="call", kind="other",
                         author=author, user=user, audit=(user or "patient", "document.uploaded"))
    publish_file(appt, doc)
    return doc


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def upload_answer(appt, role: str, call_url: str):
    """Store the file; JSON for the page's fetch, a redirect (or the page with the error) without JS."""
    try:
        doc = store_upload(appt, role, g.user if role == "practitioner" else None)
    except UploadRefused as refused:
        if wants_json():
            return jsonify(error=refused.message), refused.status
        return render_call(appt, role, upload_error=refused.message, status=refused.status)
    if wants_json():
        return jsonify(id=doc.id, name=doc.filename), 201
    return redirect(call_url, 303)


def download(appt, doc_id: int, documents=None):
    """(response, document) for one document of the visit among ``documents``, or None."""
    doc = (documents if documents is not None else Document.of(appt)).where(Document.id == doc_id).first()
    if doc is None:
        return None
    try:
        return document_download(doc), doc
    except DocumentMissing:
        return None


@bp.route("/v/<ref>/files", methods=["POST"])
@no_store
def patient_upload(ref):
    """The patient sends a file during the call."""
    appt = current_appointment(ref)
    if appt.status != "in_call":
        return redirect(url_for("patient.visit", ref=ref))
    return upload_answer(appt, "patient", url_for("visit.patient_call", ref=ref))


@bp.route("/today/<int:appointment_id>/files", methods=["POST"])
@staff_required()
@no_store
def staff_upload(appointment_id):
    """The practitioner sends a file during the call (the visit's own practitioner only)."""
    appt = own_visit_or_403(appointment_id)
    return upload_answer(appt, "practitioner", url_for("visit.staff_call", appointment_id=appointment_id))


@bp.route("/v/<ref>/files/<int:doc_id>")
@no_store
def patient_file(ref, doc_id):
    """One file of the patient's own call; any other id (the practice's report too) is simply not found."""
    appt = current_appointment(ref)
    found = download(appt, doc_id, Document.for_patient(appt, call_only=True))
    if found is None:
        abort(404)
    AuditEvent.record("patient", "document.downloaded", appt, detail=f"document {doc_id}")
    return found[0]


@bp.route("/today/<int:appointment_id>/files/<int:doc_id>")
@staff_required()
@no_store
def staff_file(appointment_id, doc_id):
    """One file of the call, for the visit's own practitioner; every access is audited."""
    appt = own_visit_or_403(appointment_id)
    found = download(appt, doc_id)
    if found is None:
        abort(404)
    AuditEvent.record(g.user, "document.downloaded", appt, detail=f"document {doc_id}")
    return found[0]
