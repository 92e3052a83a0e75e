"""The PDF report of a closed visit, rendered on the server with fpdf2.

``build_report(appt, locale)`` is called twice at closing: the practice's copy
in the practice's language and the patient's copy in the patient's language.
``new_pdf()`` gives an A4 document with the vendored DejaVu fonts (Unicode:
accents, Greek, Cyrillic, Arabic and Hebrew letters) for any other PDF, such
as a prescription written in a form.

Times are shown in the practice's time zone; dates, numbers and amounts follow
the report's locale. Text in a right-to-left script (an Arabic or Hebrew name,
a whole report in Arabic) goes through fpdf2's text shaping (uharfbuzz): letters
joined, runs in their reading order. Only such text is shaped, since shaping
every line made a French report about a quarter slower.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_date, format_datetime as babel_datetime, format_time as babel_time
from flask import current_app
from flask_babel import force_locale, gettext as _
from fpdf import FPDF

from ..i18n import dates_locale, locale_name, right_to_left
from ..money import money
from ..models import Addendum, Document, Incident, Report, VisitAct, Waiver, utcnow
from ..outcomes import end_sources, outcome_titles
from ..payments_providers import STATUS_LABELS, current_payment, provider_for
from .checklist import outcome_sentence

FONTS = Path(__file__).resolve().parent.parent / "fonts"
FONT = "DejaVu"


def needs_shaping(text) -> bool:
    """Whether the text holds right-to-left letters, which only fpdf2's text shaping joins and orders."""
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in str(text or ""))


class CabinetPDF(FPDF):
    """A4 with a footer line: the practice's name and the page number; right-to-left text shaped."""

    footer_text = ""

    def _shape_for(self, text):
        wanted = needs_shaping(text)
        if wanted != bool(self.text_shaping):
            self.set_text_shaping(wanted)

    def cell(self, w=None, h=None, text="", *args, **kwargs):
        self._shape_for(text)
        return super().cell(w, h, text, *args, **kwargs)

    def multi_cell(self, w, h=None, text="", *args, **kwargs):
        self._shape_for(text)
        return super().multi_cell(w, h, text, *args, **kwargs)

    def footer(self):
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(110)
        self.cell(0, 5, f"{self.footer_text}    {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)


def new_pdf() -> CabinetPDF:
    """An empty A4 PDF with the Unicode fonts registered (regular and bold) and set."""
    pdf = CabinetPDF(format="A4", unit="mm")
    pdf.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_creator("Cabinet")
    pdf.set_font(FONT, "", 10)
    return pdf


class _Writer:
    """Formats values for one locale and time zone, and lays out the report's blocks."""

    def __init__(self, pdf: CabinetPDF, locale: str, tz: str):
        self.pdf, self.locale, self.tz = pdf, locale, ZoneInfo(tz)
        self.dates = dates_locale(locale, tz)                   # English in Paris: "10 June 2036, 14:05"
        self.start = "R" if right_to_left(locale) else "L"     # where a line of this language begins

    # Values.

    def when(self, value: datetime | None) -> str:
        if value is None:
            return _("not recorded")
        return babel_datetime(value.replace(tzinfo=timezone.utc), "medium", tzinfo=self.tz, locale=self.dates)

    def time(self, value: datetime | None) -> str:
        if value is None:
            return _("not recorded")
        return babel_time(value.replace(tzinfo=timezone.utc), "short", tzinfo=self.tz, locale=self.dates)

    def day(self, value) -> str:
        return babel_date(value, "long", locale=self.dates) if value else _("not recorded")

    def money(self, cents: int, currency: str = "EUR") -> str:
        return money(cents, currency, locale=self.locale)

    # Layout.

    def heading(self, text: str):
        pdf = self.pdf
        if pdf.get_y() > pdf.h - pdf.b_margin - 25:   # never a heading alone at the foot of a page
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font(FONT, "B", 12)
        pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT", align=self.start)
        pdf.set_draw_color(180)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(1.5)
        pdf.set_font(FONT, "", 10)

    def field(self, label: str, value: str):
        pdf = self.pdf
        pdf.set_font(FONT, "B", 10)
        pdf.cell(52, 5.5, label)
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(0, 5.5, value or "—", new_x="LMARGIN", new_y="NEXT", align=self.start)

    def text(self, value: str, size: float = 10):
        self.pdf.set_font(FONT, "", size)
        self.pdf.multi_cell(0, 5.5, value or "—", new_x="LMARGIN", new_y="NEXT", align=self.start)

    def subheading(self, text: str):
        self.pdf.set_font(FONT, "B", 10)
        self.pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT", align=self.start)
        self.pdf.set_font(FONT, "", 10)


def _incident_label(kind: str) -> str:
    labels = {
        "connection_failed": _("Connection failed"),
        "reconnecting": _("Reconnecting"),
        "reconnected": _("Reconnected"),
        "media_stall": _("Picture or sound stalled"),
        "relay_lost": _("Media relay lost"),
        "media_lost": _("Picture and sound stopped (connection lost)"),
        "media_back": _("Picture and sound back"),
        "relay_full": _("Call service full: the call waited for a place"),
        "relay_moved": _("Call moved to another media relay"),
        "note": _("Note"),
    }
    return labels.get(kind, kind)


def _role_label(role: str) -> str:
    # Translators: who had a connection incident, in a report line "10:06 — Reconnecting — patient"
    return {"practitioner": _("practitioner"), "patient": _("patient")}.get(role, role)


def build_report(appt, locale: str) -> bytes:
    """The PDF report of ``appt`` written in ``locale``; the caller stores it as a Document."""
    with force_locale(locale):
        pdf = new_pdf()
        practice = appt.practice
        w = _Writer(pdf, locale, practice.timezone)
        pdf.footer_text = practice.name
        pdf.set_title(_("Teleconsultation report"))
        pdf.set_lang(locale)
        pdf.add_page()
        _header(w, appt)
        _identity(w, appt)
        _traceability(w, appt)
        _report(w, appt)
        _documents(w, appt)
        _acts_and_payment(w, appt)
        _closing(w, appt)
        return bytes(pdf.output())


def _header(w: _Writer, appt):
    pdf, practice = w.pdf, appt.practice
    pdf.set_font(FONT, "B", 15)
    pdf.multi_cell(0, 7, practice.name, new_x="LMARGIN", new_y="NEXT", align=w.start)
    if practice.address.strip():
        w.text(practice.address.strip(), size=9)
    pdf.ln(4)
    pdf.set_font(FONT, "B", 17)
    pdf.cell(0, 9, _("Teleconsultation report"), new_x="LMARGIN", new_y="NEXT", align=w.start)
    pdf.set_font(FONT, "", 10)


def _identity(w: _Writer, appt):
    w.heading(_("Patient"))
    patient = appt.patient if appt.patient_id else None
    w.field(_("Name"), appt.patient_name)
    w.field(_("Birth date"), w.day(patient.birth_date if patient else None))
    w.field(_("Practitioner"), appt.practitioner.name)
    if appt.motive.strip():
        w.field(_("Motive"), appt.motive.strip())


def _traceability(w: _Writer, appt):
    w.heading(_("Traceability"))
    w.field(_("Tool"), f"Cabinet {current_app.config.get('VERSION', '')}".strip())
    w.field(_("Mode"), _("Audio only") if appt.mode == "audio" else _("Video"))
    outcome = appt.outcome_shown
    if outcome:
        w.field(_("Outcome"), f"{outcome_titles()[outcome]}. {outcome_sentence(appt, w.time)}")
    if outcome == "no_show":
        consent = _("none: the patient did not come")
    elif appt.consented:
        consent = _("Given on %(when)s (text version %(version)s, in %(language)s)", when=w.when(appt.consent_at),
                    version=appt.consent_version, language=locale_name(appt.consent_locale or w.locale))
    else:
        consent = _("not recorded")
    w.field(_("Consent"), consent)
    # Translators: label: the time the visit was booked for, "10:00 to 10:20"
    w.field(_("Scheduled"), _("%(start)s to %(end)s", start=w.when(appt.starts_at), end=w.time(appt.ends_at)))
    if outcome == "no_show" or (appt.admitted_at is None and outcome):
        w.field(_("Actual start"), _("no call took place"))
    else:
        w.field(_("Actual start"), w.when(appt.admitted_at))
        end = w.when(appt.call_ended_at)
        if appt.call_ended_at:
            end += f" ({end_sources()[appt.call_end_source]})"
        w.field(_("Actual end"), end)
    if appt.resumed_at:
        w.field(_("Resumed"), w.when(appt.resumed_at))
    incidents = list(Incident.of(appt))
    if not incidents:
        w.field(_("Incidents"), _("None"))
        return
    lines = []
    for incident in incidents:
        parts = [w.when(incident.at), _incident_label(incident.kind)]
        if incident.role:
            parts.append(_role_label(incident.role))
        if incident.detail:
            parts.append(incident.detail)
        lines.append(" — ".join(parts))
    w.field(_("Incidents"), "\n".join(lines))


def _report(w: _Writer, appt):
    report = Report.get_or_none(Report.appointment == appt)
    w.heading(_("Report"))
    for label, value in ((_("Findings"), report.findings if report else ""),
                         (_("Decisions"), report.decisions if report else ""),
                         (_("Prescriptions"), report.prescriptions if report else "")):
        w.subheading(label)
        w.text(value.strip())
        w.pdf.ln(1)
    addenda = list(Addendum.select().where(Addendum.appointment == appt).order_by(Addendum.at, Addendum.id))
    if addenda:
        w.subheading(_("Addenda"))
        for addendum in addenda:
            author = addendum.user.name if addendum.user_id else ""
            w.field(w.when(addendum.at), f"{author}\n{addendum.text.strip()}".strip())


def _documents(w: _Writer, appt):
    w.heading(_("Documents"))
    docs = [d for d in Document.of(appt) if d.source != "report"]
    if not docs:
        w.text(_("No documents."))
        return
    sources = {"call": _("exchanged during the call"), "closing": _("sent after the visit")}
    for doc in docs:
        w.text(f"• {doc.filename} ({sources.get(doc.source, doc.source)})")


def _acts_and_payment(w: _Writer, appt):
    w.heading(_("Acts and fees"))
    acts = list(VisitAct.select().where(VisitAct.appointment == appt).order_by(VisitAct.id))
    waivers = {x.item: x.reason for x in Waiver.select().where(Waiver.appointment == appt)}
    for act in acts:
        w.field(act.code, f"{act.label} — {w.money(act.fee_cents)}")
    if acts:
        w.field(_("Total"), w.money(sum(a.fee_cents for a in acts)))
    elif "acts" in waivers:
        w.field(_("Acts"), _("Waived: %(reason)s", reason=waivers["acts"]))
    else:
        w.text(_("No act coded."))
    payment = current_payment(appt)
    if payment is not None:
        value = f"{w.money(payment.amount_cents, payment.currency)} — {STATUS_LABELS[payment.status]}"
        if payment.status == "paid" and payment.paid_at:
            value += f" ({w.when(payment.paid_at)})"
        w.field(_("Payment"), f"{value}\n{provider_for(payment).label}")
    elif "payment" in waivers:
        w.field(_("Payment"), _("Waived: %(reason)s", reason=waivers["payment"]))
    else:
        w.field(_("Payment"), _("No payment requested."))


def _closing(w: _Writer, appt):
    w.heading(_("Closing"))
    closer = appt.closed_by if appt.closed_by_id else appt.practitioner
    w.field(_("Closed on"), w.when(appt.closed_at or utcnow()))
    w.field(_("Closed by"), closer.name)
