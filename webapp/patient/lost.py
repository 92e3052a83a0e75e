"""A lost link: the patient types an e-mail address or a mobile number; if it is the contact on
file of an upcoming teleconsultation, the link is sent again to that contact.

The page answers the same whether or not anything matched, so it tells no one who has an
appointment. The link version is not renewed: whoever types a patient's address only makes
the patient's own link arrive again, and cannot revoke the link the patient still holds.
"""
from __future__ import annotations

import datetime as dt

from email_validator import EmailNotValidError, validate_email
from flask import g
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length, ValidationError

from .. import notify
from ..auth import limiter
from ..forms import normalize_phone, strip
from ..models import Appointment, AuditEvent, Message, fn, utcnow
from ..answers import form_status, render
from . import bp

# A patient asking twice in a row gets one message, not two.
QUIET = dt.timedelta(minutes=10)
MAX_MATCHES = 5


class LostLinkForm(FlaskForm):
    contact = StringField(_l("Your e-mail address or mobile number"), filters=[strip], validators=[
        DataRequired(_l("Enter your e-mail address or mobile number.")),
        Length(max=254, message=_l("At most 254 characters."))])

    def validate_contact(self, field):
        """Keep (channel, normalized contact); a shape that is neither is an error."""
        if "@" in field.data:
            try:
                self.found = ("email", validate_email(field.data, check_deliverability=False).normalized)
            except EmailNotValidError:
                raise ValidationError(_l("Enter a valid e-mail address, like name@example.fr.")) from None
            return
        phone = normalize_phone(field.data)
        if phone is None:
            raise ValidationError(_l("Enter a valid e-mail address or mobile number, like 06 12 34 56 78."))
        self.found = ("sms", phone)


def matching_appointments(practice, channel: str, contact: str, now: dt.datetime) -> list[Appointment]:
    """Live appointments of the practice, upcoming or still open, whose contact on file is ``contact``."""
    query = Appointment.select().where(
        Appointment.practice == practice, Appointment.status.in_(("scheduled", "waiting", "in_call")),
        Appointment.starts_at >= now - dt.timedelta(minutes=practice.link_closes_minutes_after))
    if channel == "email":
        query = query.where(fn.lower(Appointment.contact_email) == contact.lower())
    else:
        query = query.where(Appointment.contact_phone == contact)
    return list(query.order_by(Appointment.starts_at).limit(MAX_MATCHES))


def resend(appt: Appointment, channel: str, now: dt.datetime) -> bool:
    """Queue the link again on that channel, unless it was just re-sent."""
    recent = Message.select().where(Message.appointment == appt, Message.kind == "link_resent",
                                    Message.channel == channel, Message.created_at >= now - QUIET).exists()
    if recent or not notify.queue(appt, "link_resent", channels=(channel,), now=now):
        return False
    AuditEvent.record("patient", "patient.link_resent_requested", appt, detail=channel)
    return True


@bp.route("/lost-link", methods=["GET", "POST"])
@limiter.limit("5 per minute; 20 per hour", methods=["POST"])
def lost_link():
    """Ask for the link again; the answer never says whether anything matched."""
    form = LostLinkForm()
    if not form.validate_on_submit():
        return render("patient/lost_link.html", "patient/_lost_link_form.html", form=form, done=False,
                      status=form_status(form))
    channel, contact = form.found
    now = utcnow()
    if g.practice is not None:
        for appt in matching_appointments(g.practice, channel, contact, now):
            resend(appt, channel, now)
    return render("patient/lost_link.html", "patient/_lost_link_form.html", form=form, done=True)

