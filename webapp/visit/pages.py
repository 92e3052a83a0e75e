"""The call page, for both sides: one fragment, templates/visit/_call.html."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import current_app, g, redirect, render_template, url_for
from flask_babel import gettext as _

from ..access import current_appointment, may_resume, own_visit_or_403
from ..answers import no_store, page_with_scripts
from ..events import CALL_CLOSES
from ..auth import staff_required
from ..events import announce
from ..models import Appointment, AuditEvent
from . import bp
from .bridge import closing_url, history


def _path(url: str) -> str:
    """Websocket routes build as absolute ws:// URLs; the page picks ws or wss from its own address."""
    return urlsplit(url).path


def call_context(appt: Appointment, role: str) -> dict:
    """What the page (and js/call/, through data- attributes) needs for one side."""
    items = history(appt)
    for item in items:
        if item["type"] == "file":
            item["url"] = item.pop("urls")[role]
    if role == "patient":
        urls = {"signal": _path(url_for("visit.patient_signal", ref=appt.ref)),
                "upload": url_for("visit.patient_upload", ref=appt.ref),
                "ended": url_for("visit.patient_call", ref=appt.ref)}
    else:
        urls = {"signal": _path(url_for("visit.practitioner_signal", appointment_id=appt.id)),
                "upload": url_for("visit.staff_upload", appointment_id=appt.id),
                "ended": closing_url(appt)}
    return {"appt": appt, "role": role, "items": items, "urls": urls, "audio_only": appt.mode == "audio",
            "ice_servers": json.dumps(current_app.config.get("ICE_SERVERS") or []),
            "closes": json.dumps({str(code): action for code, action in CALL_CLOSES.items()}),
            "max_upload_mb": appt.practice.max_upload_mb}


def render_call(appt: Appointment, role: str, upload_error: str | None = None, status: int = 200):
    """The call page; a boosted navigation would swap the body without running its scripts."""
    page = "patient/call.html" if role == "patient" else "today/call.html"
    return page_with_scripts(page, status, upload_error=upload_error, **call_context(appt, role))


@bp.route("/v/<ref>/call")
@no_store
def patient_call(ref):
    """The patient's call page, once the practitioner has admitted them."""
    appt = current_appointment(ref)
    if appt.call_ended:
        return render_template("visit/ended.html", appt=appt)
    if appt.status != "in_call":
        return redirect(url_for("patient.visit", ref=ref))
    AuditEvent.record("patient", "visit.call_viewed", appt)     # the page shows the chat and files so far
    return render_call(appt, "patient")


@bp.route("/today/<int:appointment_id>/call")
@staff_required()
@no_store
def staff_call(appointment_id):
    """The practitioner's call page for an admitted patient: the visit's own practitioner only."""
    appt = own_visit_or_403(appointment_id)
    if appt.status != "in_call":
        return redirect(url_for("agenda.detail", appointment_id=appt.id))
    if appt.call_ended:         # its checklist, which offers to resume it while the link is open
        return redirect(closing_url(appt))
    AuditEvent.record(g.user, "visit.call_viewed", appt)        # the page shows the chat and files so far
    return render_call(appt, "practitioner")


@bp.route("/today/<int:appointment_id>/resume", methods=["POST"])
@staff_required()
@no_store
def resume_call(appointment_id):
    """Resume a call ended by mistake, while the patient's link is open: the patient may rejoin."""
    appt = own_visit_or_403(appointment_id)
    if not may_resume(appt) or not appt.resume_call(g.user):
        return render_template("visit/resume_refused.html", appt=appt,
                               message=_("This call can no longer be resumed: it was closed, its outcome was "
                                         "recorded, or the patient's link has closed.")), 409
    announce(appt)          # the patient's ended page offers to rejoin
    return redirect(url_for("visit.staff_call", appointment_id=appt.id))
