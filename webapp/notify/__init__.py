"""Notifications to patients: the outbox, e-mail over SMTP, SMS backends, reminders.

``queue(appt, kind)`` is what other features call: it puts the message(s) of
that kind for this appointment in the outbox (``Message`` rows), on the
channels chosen at booking, in the patient's language. Kinds: invitation,
reminder, link_resent, moved, cancelled, closed.
"""
from __future__ import annotations


def queue(appt, kind: str) -> list:
    """Put this appointment's message of ``kind`` in the outbox; return the Message rows."""
    raise NotImplementedError  # being written: see the notifications issue


def init_app(app) -> None:
    """Start the in-process sender (the embedded default)."""
