"""The outbox engine: messages queued with their content, delivered when due, retried with back-off.

The content is written when the message is queued (so the link and the language
are those of that moment); ``send_due()`` delivers what is due, with retries and
back-off. A message is never deleted: it ends ``sent``, ``failed`` (shown to staff,
who can retry) or ``skipped`` (a reminder that no longer makes sense).
"""
from __future__ import annotations

import contextlib
import datetime as dt

from flask import after_this_request, current_app, has_request_context
from flask_babel import force_locale

from ..access import patient_link_url, site_url
from ..forms import can_receive_sms
from ..models import Appointment, Message, Practice, utcnow
from .compose import KINDS, WITH_LINK, email_content, sms_content, sms_text
from .deliver import DeliveryError, send_email, sms_backend

# Back-off between attempts; after MAX_ATTEMPTS failures a message is "failed" and waits for staff.
BACKOFF = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=15), dt.timedelta(minutes=60))
MAX_ATTEMPTS = 5
# A claimed message is not picked again for this long: longer than any SMTP or HTTP timeout.
LEASE = dt.timedelta(minutes=10)
# Messages that carry the current link: after one of them, an earlier reminder is pointless.
LINK_KINDS = ("invitation", "moved", "link_resent")


def _url_context(practice):
    """Patient links are built with url_for, which needs a request; the sender thread has none.
    Its links use the site's address as every request does (``access.site_url``)."""
    if has_request_context():
        return contextlib.nullcontext()
    return current_app.test_request_context(base_url=site_url(practice) or "http://localhost/")


def channels_of(appt) -> list[tuple[str, str]]:
    """(channel, recipient) pairs chosen at booking that have a contact on file."""
    found = []
    if appt.notify_email and appt.contact_email:
        found.append(("email", appt.contact_email))
    if appt.notify_sms and appt.contact_phone and can_receive_sms(appt.contact_phone):
        found.append(("sms", appt.contact_phone))
    return found


def queue(appt, kind: str, *, channels=None, dedupe: str | None = None, now=None) -> list:
    """Put this appointment's message of ``kind`` in the outbox; return the Message rows.

    ``channels`` restricts to some of "email", "sms" (still to the contacts on file);
    ``dedupe`` makes the message once-only: a second call with the same key adds nothing.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    practice = appt.practice
    locale = appt.effective_locale(practice.default_locale)
    now = now or utcnow()
    rows = []
    with _url_context(practice), force_locale(locale):
        link = patient_link_url(appt) if kind in WITH_LINK else ""
        for channel, recipient in channels_of(appt):
            if channels is not None and channel not in channels:
                continue
            content = (email_content if channel == "email" else sms_content)(appt, kind, locale, link)
            fields = {"appointment": appt.id, "channel": channel, "kind": kind, "recipient": recipient,
                      "locale": locale, "next_attempt_at": now, "created_at": now, **content}
            if dedupe is None:
                rows.append(Message.create(**fields))
                continue
            key = f"{dedupe}:{channel}"
            if Message.select().where(Message.dedupe_key == key).exists():
                continue
            # Two senders may race to the same reminder: the unique key lets only one row in.
            Message.insert(**fields, dedupe_key=key).on_conflict_ignore().execute()
            rows.append(Message.get(Message.dedupe_key == key))
    if rows:
        _wake_sender()
    return rows


def _wake_sender() -> None:
    """Tell the in-process sender (when it runs) that messages wait, once the request's own
    transaction is over, so that it finds them."""
    sender = current_app.extensions.get("notify_sender")
    if sender is None:
        return
    if has_request_context():
        after_this_request(lambda response: (sender.wake(), response)[1])
    else:
        sender.wake()


def _reminder_offset(appt, offsets, now) -> int | None:
    """The reminder due now for this appointment, if any: the latest one whose time has come.

    Earlier ones that were missed (the sender was off) are not sent late on top of it. None when
    the patient was booked, or got a message with the current link, after that time: they know.
    """
    due = [m for m in offsets if appt.starts_at - dt.timedelta(minutes=m) <= now]
    if not due:
        return None
    offset = min(due)
    due_at = appt.starts_at - dt.timedelta(minutes=offset)
    if appt.created_at >= due_at:
        return None
    told = Message.select().where(Message.appointment == appt, Message.kind.in_(LINK_KINDS),
                                  Message.created_at >= due_at).exists()
    return None if told else offset


def queue_due_reminders(now=None) -> int:
    """Queue the reminders whose time has come; each (appointment, offset, link) fires once."""
    now = now or utcnow()
    count = 0
    for practice in Practice.select():
        offsets = practice.reminders
        if not offsets:
            continue
        upcoming = Appointment.select().where(
            Appointment.practice == practice, Appointment.status == "scheduled",
            Appointment.starts_at > now, Appointment.starts_at <= now + dt.timedelta(minutes=max(offsets)))
        for appt in upcoming:
            offset = _reminder_offset(appt, offsets, now)
            if offset is not None:
                key = f"reminder:{appt.id}:{offset}:{appt.link_version}"
                before = Message.select().where(Message.dedupe_key.startswith(key + ":")).count()
                queue(appt, "reminder", dedupe=key, now=now)
                count += Message.select().where(Message.dedupe_key.startswith(key + ":")).count() - before
    return count


def _obsolete(message, now) -> str | None:
    """Why a pending reminder should no longer go out, or None."""
    appt = message.appointment
    if message.kind != "reminder" or appt is None:
        return None
    if not appt.is_active:
        return "the appointment is no longer active"
    if appt.starts_at <= now:
        return "the appointment has already started"
    parts = (message.dedupe_key or "").split(":")
    if len(parts) == 5 and parts[3] != str(appt.link_version):
        return "the link has been replaced since"
    return None


def _deliver(message, config):
    if message.channel == "email":
        practice_name = message.appointment.practice.name if message.appointment_id else ""
        send_email(message, config, practice_name)
    else:
        sms_backend(config).send(message.recipient, sms_text(message.body))   # also bodies queued before it


def _claim(message_id, now) -> bool:
    """Take one due message for this sender, atomically: no other sender (thread, process, cron)
    can take it until the lease ends. A crash between sending and marking means one more
    delivery after the lease, never a lost message."""
    return Message.update(attempts=Message.attempts + 1, next_attempt_at=now + LEASE).where(
        Message.id == message_id, Message.status == "pending", Message.next_attempt_at <= now).execute() == 1


def send_due(now=None, limit: int = 200) -> dict:
    """One pass: deliver the pending messages whose time has come. Returns counts by outcome."""
    now = now or utcnow()
    config = current_app.config
    counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    due = (Message.select(Message.id).where(Message.status == "pending", Message.next_attempt_at <= now)
           .order_by(Message.next_attempt_at, Message.id).limit(limit))
    for message_id in [m.id for m in due]:
        if not _claim(message_id, now):
            continue
        message = Message.get_by_id(message_id)
        reason = _obsolete(message, now)
        if reason:
            Message.update(status="skipped", last_error=reason).where(Message.id == message_id).execute()
            counts["skipped"] += 1
            continue
        try:
            _deliver(message, config)
        except DeliveryError as exc:
            counts[_failed(message, str(exc), now)] += 1
        else:
            Message.update(status="sent", sent_at=now, last_error="").where(Message.id == message_id).execute()
            counts["sent"] += 1
    return counts


def _failed(message, error: str, now) -> str:
    if message.attempts >= MAX_ATTEMPTS:
        Message.update(status="failed", last_error=error, next_attempt_at=now).where(
            Message.id == message.id).execute()
        return "failed"
    wait = BACKOFF[min(message.attempts, len(BACKOFF)) - 1]
    Message.update(last_error=error, next_attempt_at=now + wait).where(Message.id == message.id).execute()
    return "retry"


def retry(message, now=None) -> None:
    """Staff ask for a failed (or skipped) message to go out again, now, with a fresh count."""
    now = now or utcnow()
    Message.update(status="pending", attempts=0, next_attempt_at=now).where(
        Message.id == message.id, Message.status.in_(("failed", "skipped"))).execute()


def messages_of(appt) -> list:
    """The appointment's messages, newest first, for staff."""
    return list(Message.select().where(Message.appointment == appt).order_by(Message.created_at.desc(),
                                                                              Message.id.desc()))


def run_once(now=None) -> dict:
    """What the sender thread and ``flask send-due`` do: queue due reminders, then send what is due."""
    reminders = queue_due_reminders(now)
    return {"reminders": reminders, **send_due(now)}
