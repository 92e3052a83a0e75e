"""Staff side of notifications: an appointment's messages, and retrying a failed one."""
from __future__ import annotations

from flask import Blueprint, abort, g, url_for

from ..access import appointment_or_404
from ..answers import after_change, render
from ..auth import staff_required
from ..models import AuditEvent, Message
from .outbox import messages_of, retry as retry_message

bp = Blueprint("notify", __name__)


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
