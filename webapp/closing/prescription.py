"""A prescription written in the checklist's form, rendered as the PDF a French pharmacist expects.

An ordonnance names its prescriber (name, profession and specialty, RPPS and health-insurance
numbers, practice address and phone), is dated, names its patient (names, birth date and age,
weight when given), lists what is prescribed, says it was issued after a teleconsultation, and is
signed. What the practitioner's profile lacks is left out, never invented: the checklist tells
them what to fill in (``profiles.missing_for_prescription``).
"""
from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_decimal
from flask_babel import force_locale, gettext as _, ngettext

from ..i18n import dates_locale, utc_to_local
from ..models import utcnow
from ..profiles import phone_for_print, profession_name, signature_image
from .pdf import FONT, new_pdf

SIGNATURE_BOX = (55.0, 24.0)        # mm: the widest and tallest a signature is drawn


def age_text(born: date, today: date) -> str:
    """"66 years old"; a child under two in months, as paediatric doses are worked out."""
    months = (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)
    if months < 24:
        return ngettext("%(num)d month old", "%(num)d months old", max(months, 0))
    return ngettext("%(num)d year old", "%(num)d years old", months // 12)


def _prescriber_lines(practitioner, practice) -> list[str]:
    lines = []
    trade = " — ".join(p for p in (profession_name(practitioner.profession), practitioner.specialty.strip()) if p)
    if trade:
        lines.append(trade)
    if practitioner.rpps:
        lines.append(_("RPPS: %(number)s", number=practitioner.rpps))
    if practitioner.am_number:
        lines.append(_("Health-insurance (AM) no.: %(number)s", number=practitioner.am_number))
    address = practitioner.practice_address.strip() or practice.address.strip()
    if address:
        lines.extend(address.splitlines())
    if practitioner.practice_phone:
        lines.append(_("Phone: %(number)s", number=phone_for_print(practitioner.practice_phone)))
    return lines


def _patient_lines(appt, today: date, weight_kg: Decimal | None, locale: str) -> list[str]:
    patient = appt.patient if appt.patient_id else None
    name = f"{patient.first_name} {patient.last_name.upper()}".strip() if patient else appt.patient_name
    lines = [_("Patient: %(name)s", name=name)]
    if patient and patient.birth_date:
        lines.append(_("Born on %(date)s (%(age)s)", date=format_date(patient.birth_date, "long",
                                                                  locale=dates_locale(locale, appt.practice.timezone)),
                       age=age_text(patient.birth_date, today)))
    if weight_kg is not None:
        lines.append(_("Weight: %(kg)s kg", kg=format_decimal(weight_kg, locale=locale)))
    return lines


def render_prescription(appt, practitioner, text: str, locale: str, weight_kg: Decimal | None = None) -> bytes:
    """The prescriber's header, the date, the patient, the lines, the teleconsultation mention, the signature."""
    practice = appt.practice
    pdf = new_pdf()
    with force_locale(locale):
        today = utc_to_local(utcnow(), practice.timezone).date()      # the practice's date, not UTC's
        pdf.footer_text = practice.name
        pdf.set_title(_("Prescription"))
        pdf.set_lang(locale)
        pdf.add_page()
        width = pdf.w - pdf.l_margin - pdf.r_margin
        pdf.set_font(FONT, "B", 13)
        pdf.multi_cell(width * 0.62, 6, practitioner.name, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 9.5)
        for line in _prescriber_lines(practitioner, practice):
            pdf.multi_cell(width * 0.62, 4.6, line, new_x="LMARGIN", new_y="NEXT")
        bottom = pdf.get_y()
        pdf.set_xy(pdf.l_margin + width * 0.62, pdf.t_margin)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(width * 0.38, 4.6, practice.name, align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(max(bottom, pdf.get_y()) + 3)
        pdf.set_draw_color(150)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(5)
        pdf.set_font(FONT, "", 10.5)
        on = format_date(today, "long", locale=dates_locale(locale, practice.timezone))
        pdf.cell(0, 5, _("On %(date)s", date=on), align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        for line in _patient_lines(appt, today, weight_kg, locale):
            pdf.multi_cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        pdf.set_font(FONT, "B", 15)
        pdf.cell(0, 8, _("Prescription").upper(), align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(5)
        pdf.set_font(FONT, "", 11)
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(8)
        _mention_and_signature(pdf, appt, practitioner, locale)
    return bytes(pdf.output())


def _mention_and_signature(pdf, appt, practitioner, locale: str) -> None:
    """Kept together at the foot of the lines: the teleconsultation mention, the signature, the name."""
    if pdf.get_y() > pdf.h - pdf.b_margin - SIGNATURE_BOX[1] - 22:
        pdf.add_page()
    held = utc_to_local(appt.admitted_at or appt.starts_at, appt.practice.timezone).date()
    pdf.set_font(FONT, "", 9.5)
    pdf.multi_cell(0, 5, _("Prescription issued after a teleconsultation on %(date)s.",
                           date=format_date(held, "long", locale=dates_locale(locale, appt.practice.timezone))),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    box_x = pdf.w - pdf.r_margin - SIGNATURE_BOX[0]
    data = signature_image(practitioner)
    if data is not None:
        pdf.image(io.BytesIO(data), x=box_x, y=pdf.get_y(), w=SIGNATURE_BOX[0], h=SIGNATURE_BOX[1],
                  keep_aspect_ratio=True)
        pdf.set_y(pdf.get_y() + SIGNATURE_BOX[1] + 1)
    else:
        pdf.ln(SIGNATURE_BOX[1] / 2)
    pdf.set_font(FONT, "", 10)
    pdf.set_x(box_x - 20)
    pdf.multi_cell(SIGNATURE_BOX[0] + 20, 5, practitioner.name, align="R", new_x="LMARGIN", new_y="NEXT")
