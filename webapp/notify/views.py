"""Staff side of notifications: an appointment's messages, retrying a failed one, and the SMS
staff copy into a phone when no gateway sends them (the "outbox" backend)."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, g, url_for

from ..access import appointment_or_404
from ..answers import after_change, render
from ..auth import staff_required
from ..models import AuditEvent, Message
from .outbox import messages_of, retry as retry_message

bp = Blueprint("notify", __name__)


def _outbox_backend_or_404():
    if (current_app.config.get("SMS_BACKEND") or "outbox") != "outbox":
        abort(404)


@bp.route("/messages/sms")
@staff_required()
def sms_to_copy():
    """Every SMS waiting to be copied and sent, in one place for the secretary."""
    _outbox_backend_or_404()
    return render("notify/sms.html", "notify/_sms_list.html", messages=list(Message.sms_to_copy(g.practice)))


@bp.route("/messages/<int:message_id>/copied", methods=["POST"])
@staff_required()
def sms_copied(message_id):
    """Staff copied this SMS into a phone and sent it: it leaves the list."""
    _outbox_backend_or_404()
    message = Message.sms_to_copy(g.practice).where(Message.id == message_id).first()
    if message is None:
        abort(404)
    message.mark_copied(g.user)
    return after_change(url_for("notify.sms_to_copy"), "notify/sms.html", "notify/_sms_list.html",
                        messages=list(Message.sms_to_copy(g.practice)))


@bp.route("/agenda/<int:appointment_id>/messages")
@staff_required()
def messages(appointment_id):
    """The appointment's messages and where each stands (the panel asks again while one is on its way)."""
    appt = appointment_or_404(appointment_id)
    return render("notify/_messages.html", appt=appt, messages=messages_of(appt))


@bp.route("/agenda/<int:appointment_id>/messages/<int:message_id>/retry", methods=["POST"])
@staff_required()
def retry(appointment_id, message_id):
    """Send a failed message again, now."""
    appt = appointment_or_404(appointment_id)
    message = Message.get_or_none(Message.id == message_id, Message.appointment == appt)
    if message is None:
        abort(404)
    if message.status not in ("failed", "skipped"):
        abort(409)
    retry_message(message)
    AuditEvent.record(g.user, "message.retried", appt, detail=f"{message.kind}:{message.channel}")
    return after_change(url_for("agenda.detail", appointment_id=appt.id), "notify/_messages.html", appt=appt,
                        messages=messages_of(appt))
