"""Closing a visit: one transaction, or nothing at all."""
from __future__ import annotations

import hashlib

from ..models import Document, Report, db
from ..storage import documents


class AlreadyClosed(Exception):
    """Another request (a second tab, a double submit) closed this visit first."""


def close_visit(appt, actor) -> None:
    """Close, freeze the report, store both PDF copies and queue the patient's message.

    The conditional UPDATE in ``Appointment.close`` comes first, so a second request waits on
    the first one's lock and then finds the visit closed. If anything fails (a PDF, the store,
    the outbox), the transaction rolls back and the files already written are deleted.
    """
    from .. import notify
    from .pdf import build_report        # late: the report pulls in the payment providers
    stored = []
    try:
        with db.atomic():
            if not appt.close(actor):
                raise AlreadyClosed(appt.id)
            _freeze_report(appt)
            practice = appt.practice
            copies = (("report", practice.default_locale),
                      ("patient_report", appt.effective_locale(practice.default_locale)))
            for kind, locale in copies:
                data = build_report(appt, locale)
                key = documents().store(data)
                stored.append(key)
                Document.create(appointment=appt, source="report", kind=kind, author="system", user=actor,
                                filename=f"{kind.replace('_', '-')}-{appt.closed_at:%Y-%m-%d}-{locale}.pdf",
                                content_type="application/pdf", size=len(data),
                                sha256=hashlib.sha256(data).hexdigest(), storage_key=key, locale=locale)
            notify.queue(appt, "closed")
    except BaseException:
        for key in stored:
            documents().delete(key)
        raise


def _freeze_report(appt) -> None:
    report = Report.get_or_none(Report.appointment == appt)
    if report is None:
        Report.create(appointment=appt, frozen_at=appt.closed_at)
    else:
        Report.update(frozen_at=appt.closed_at).where(Report.id == report.id).execute()
