"""The call page, shared by both sides: one fragment, templates/visit/_call.html."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import current_app, make_response, render_template, request, url_for

from ..models import Appointment
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
                "ended": url_for("patient.call", ref=appt.ref)}
    else:
        urls = {"signal": _path(url_for("visit.practitioner_signal", appointment_id=appt.id)),
                "upload": url_for("visit.staff_upload", appointment_id=appt.id),
                "ended": closing_url(appt)}
    return {"appt": appt, "role": role, "items": items, "urls": urls, "audio_only": appt.mode == "audio",
            "ice_servers": json.dumps(current_app.config.get("ICE_SERVERS") or []),
            "max_upload_mb": appt.practice.max_upload_mb}


def render_call(appt: Appointment, role: str, upload_error: str | None = None, status: int = 200):
    page = "patient/call.html" if role == "patient" else "today/call.html"
    response = make_response(render_template(page, upload_error=upload_error, **call_context(appt, role)), status)
    if request.headers.get("HX-Request"):
        # A boosted navigation would swap the body without running the call's scripts: load the page for real.
        response.headers["HX-Redirect"] = request.path
    return response
