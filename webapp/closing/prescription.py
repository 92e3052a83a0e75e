"""A prescription written in the checklist's form, rendered to a one-page PDF."""
from __future__ import annotations

from babel.dates import format_date
from flask_babel import force_locale, gettext as _

from ..i18n import utc_to_local
from ..models import utcnow
from .pdf import FONT, new_pdf


def render_prescription(appt, practitioner, text: str, locale: str) -> bytes:
    """Practice header, patient identity, the text, the practitioner's name and the date."""
    practice = appt.practice
    pdf = new_pdf()
    with force_locale(locale):
        pdf.footer_text = practice.name
        pdf.add_page()
        pdf.set_font(FONT, "B", 13)
        pdf.multi_cell(0, 6, practice.name, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 9)
        if practice.address:
            pdf.multi_cell(0, 4.5, practice.address, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(0, 5, practitioner.name, new_x="LMARGIN", new_y="NEXT")
        today = utc_to_local(utcnow(), practice.timezone).date()
        pdf.multi_cell(0, 5, _("Date: %(date)s", date=format_date(today, "long", locale=locale)),
                       new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        pdf.set_font(FONT, "B", 16)
        pdf.cell(0, 9, _("Prescription"), new_x="LMARGIN", new_y="NEXT", align="C")
        pdf.ln(2)
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(0, 5, _("Patient: %(name)s", name=appt.patient_name), new_x="LMARGIN", new_y="NEXT")
        if appt.patient_id and appt.patient.birth_date:
            born = format_date(appt.patient.birth_date, "long", locale=locale)
            pdf.multi_cell(0, 5, _("Born on %(date)s", date=born), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        pdf.set_font(FONT, "", 11)
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(10)
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(0, 5, practitioner.name, new_x="LMARGIN", new_y="NEXT", align="R")
    return bytes(pdf.output())
