"""Notifications to patients: the outbox, e-mail over SMTP, SMS backends, reminders.

``queue(appt, kind)`` is what features call: it puts the message(s) of that kind
for this appointment in the outbox (``Message`` rows), on the channels chosen at
booking, in the patient's language. Kinds: invitation, reminder, link_resent,
moved, cancelled, closed, missed, requested and declined
(an online booking waiting for staff, and their refusal); ``queue_code`` sends an online
booking's one-time code, which belongs to no appointment yet. The engine is ``outbox.py``; ``compose.py`` writes the
texts, ``deliver.py`` hands them over, ``sender.py`` is the in-process sender.
"""
from __future__ import annotations

from flask import g

from ..models import Message
from . import sender, views
from .codes import queue_code, sms_possible
from .compose import KINDS
from .deliver import DeliveryError
from .outbox import messages_of, queue, queue_due_reminders, retry, run_once, send_due


def init_app(app) -> None:
    """Staff pages for messages, the count of SMS to copy in the staff header, and the in-process
    sender (the embedded default)."""
    app.register_blueprint(views.bp)
    sender.init_app(app)

    @app.context_processor
    def _sms_to_copy():
        def count() -> int:       # asked only by the staff header, for a signed-in user
            if (app.config.get("SMS_BACKEND") or "outbox") != "outbox" or g.get("practice") is None:
                return 0
            return Message.sms_to_copy(g.practice).count()
        return {"sms_to_copy_count": count}


__all__ = ["queue", "queue_code", "sms_possible", "queue_due_reminders", "send_due", "retry", "messages_of", "run_once", "init_app",
           "KINDS", "DeliveryError"]
