"""Closing a visit: one transaction, or nothing at all."""
from __future__ import annotations

from flask_babel import force_locale, gettext as _

from .. import notify
from ..cooperative import offload
from ..i18n import utc_to_local
from ..models import Report, db
from ..storage import documents
from ..uploads import dated_filename, store_document
from .pdf import build_report


class AlreadyClosed(Exception):
    """Another request (a second tab, a double submit) closed this visit first."""


def close_visit(appt, actor, message: str | None = "closed") -> None:
    """Close, freeze the report, store both PDF copies and queue the patient's message of kind
    ``message`` (none when None: a patient who did not come is told only if staff chose to).

    The conditional UPDATE in ``Appointment.close`` comes first, so a second request waits on
    the first one's lock and then finds the visit closed. If anything fails (a PDF, the store,
    the outbox), the transaction rolls back and the files already written are deleted.
    """
    stored = []
    try:
        with db.atomic():
            if not appt.close(actor):
                raise AlreadyClosed(appt.id)
            _freeze_report(appt)
            practice = appt.practice
            day = utc_to_local(appt.closed_at, practice.timezone)     # the practice's date, not UTC's
            copies = (("report", practice.default_locale),
                      ("patient_report", appt.effective_locale(practice.default_locale)))
            for kind, locale in copies:
                with force_locale(locale):     # the file's name in the language of its text
                    # Translators: words in a PDF's file name (report-2036-06-10.pdf): lowercase
                    name = dated_filename(_("patient report") if kind == "patient_report" else _("report"), day,
                                          "pdf").replace(".pdf", f"-{locale}.pdf")
                doc = store_document(appt, offload(build_report, appt, locale), source="report", kind=kind, author="system",
                                     user=actor, locale=locale, content_type="application/pdf", filename=name)
                stored.append(doc.storage_key)   # the outer transaction may still roll back
            if message:
                notify.queue(appt, message)
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
