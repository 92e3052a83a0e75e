"""The one-time code of an online booking: an e-mail or SMS that belongs to no appointment yet.

It says only the practice's name and the code (no name, no date, no practitioner), in the language
of the booking page, and goes through the outbox like every other message, sent at once.
"""
from __future__ import annotations

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from ..models import Message, utcnow
from .outbox import _wake_sender

KIND = "booking_code"


def sms_possible() -> bool:
    """Whether a code can go by SMS: only through a real gateway, never the staff-copied outbox."""
    return (current_app.config.get("SMS_BACKEND") or "outbox") != "outbox"


def queue_code(practice, channel: str, recipient: str, locale: str, code: str, minutes: int) -> Message:
    """Put the code's message in the outbox and wake the sender."""
    with force_locale(locale):
        if channel == "sms":
            content = {"subject": "", "html": "",
                       "body": _("%(practice)s: your booking code is %(code)s. It is valid for %(minutes)s minutes.",
                                 practice=practice.name, code=code, minutes=minutes)}
        else:
            context = {"subject": _("Your booking code for %(practice)s", practice=practice.name),
                       "lead": _("Your code to confirm your booking with %(practice)s is %(code)s.",
                                 practice=practice.name, code=code),
                       "action": _("It is valid for %(minutes)s minutes. If you did not ask for it, ignore this "
                                   "message.", minutes=minutes),
                       "link": "", "practice": practice.name, "locale": locale, "opens": None}
            content = {"subject": context["subject"], "body": render_template("notify/email.txt", **context),
                       "html": render_template("notify/email.html", **context)}
    now = utcnow()
    message = Message.create(channel=channel, kind=KIND, recipient=recipient, locale=locale, next_attempt_at=now,
                             created_at=now, **content)
    _wake_sender()
    return message
