"""The patient's space: after the visit is closed, the same link opens its documents, payment and chat.

Everything here is looked up through the appointment the patient's cookie
opens; a document id of another appointment is a plain 404 that says nothing
about it. The space stays open for ``Practice.patient_space_days`` after the
visit, the same time the link and its cookie live.
"""
from __future__ import annotations

import datetime as dt

from flask import abort, make_response, redirect, render_template, url_for

from ..access import current_appointment
from ..answers import no_store
from ..models import AuditEvent, ChatLine, Document, Waiver, utcnow
from ..payments_providers import STATUS_LABELS, current_payment
from ..uploads import audited_download
from . import bp


def space_closes_at(appt) -> dt.datetime:
    """When the space closes: ``patient_space_days`` after the visit's planned end, as the link does."""
    return appt.ends_at + dt.timedelta(days=appt.practice.patient_space_days)


def _open_space(ref: str):
    """The closed appointment whose space is open, or the response to give instead."""
    appt = current_appointment(ref, closed_ok=True)
    if appt.status != "closed":
        return None, redirect(url_for("patient.visit", ref=ref))
    if utcnow() >= space_closes_at(appt):
        return None, make_response(render_template("patient/space_closed.html", appt=appt), 410)
    return appt, None


def patient_documents(appt) -> list[Document]:
    """What the patient may download (``Document.for_patient``: never the practice's copy of the report)."""
    return list(Document.for_patient(appt))


@bp.route("/v/<ref>/space")
@no_store
def space(ref):
    """The patient's documents, payment request and chat history of a closed visit."""
    appt, elsewhere = _open_space(ref)
    if elsewhere is not None:
        return elsewhere
    waived = Waiver.get_or_none(Waiver.appointment == appt, Waiver.item == "payment") is not None
    AuditEvent.record("patient", "patient.space_viewed", appt)
    return render_template("patient/space.html", appt=appt, documents=patient_documents(appt),
                           payment=current_payment(appt), payment_waived=waived, labels=STATUS_LABELS,
                           chat=list(ChatLine.of(appt)), closes_at=space_closes_at(appt))


@bp.route("/v/<ref>/space/documents/<int:document_id>")
@no_store
def space_document(ref, document_id):
    """Download one document of this visit, never another's."""
    appt, elsewhere = _open_space(ref)
    if elsewhere is not None:
        return elsewhere
    doc = next((d for d in patient_documents(appt) if d.id == document_id), None)
    if doc is None:
        abort(404)
    return audited_download(doc, appt, "patient", "patient.document_downloaded")
