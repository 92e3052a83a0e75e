"""What a message says: subject, text, HTML, SMS and .ics, in the patient's language.

Only the practice's name, the date, the time and the link: never the motive, never
medical data, never the patient's name in an SMS. Callers wrap these functions in
``flask_babel.force_locale(locale)``; dates are formatted in the practice's time zone.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from babel.dates import format_date, format_time
from flask import current_app, render_template
from flask_babel import gettext as _
from icalendar import Calendar, Event, vCalAddress, vText

from ..i18n import dates_locale, utc_to_local

KINDS = ("invitation", "reminder", "link_resent", "moved", "cancelled", "closed", "missed", "requested", "declined")
# Kinds that carry the patient link; a cancelled appointment's link no longer works.
WITH_LINK = {"invitation", "reminder", "link_resent", "moved", "closed", "missed", "requested"}
# Kinds sent after the visit: their link opens the patient's space, not the way in.
AFTER = {"closed", "missed"}
# Kinds that come with a calendar file, and its iTIP method.
ICS_METHOD = {"invitation": "REQUEST", "moved": "REQUEST", "reminder": "REQUEST", "cancelled": "CANCEL"}


def when(appt, locale: str, date_format: str = "full") -> dict:
    """The appointment's date and time as the patient reads them, in the practice's time zone."""
    local = utc_to_local(appt.starts_at, appt.practice.timezone)
    dates = dates_locale(locale, appt.practice.timezone)
    return {"date": format_date(local.date(), date_format, locale=dates),
            "time": format_time(local.time(), "short", locale=dates)}


def _subject(kind, **v):
    return {
        # Translators: an e-mail subject; %(date)s is a full date ("Tuesday 10 June 2036")
        "invitation": lambda: _("Your teleconsultation with %(practitioner)s (%(practice)s) on %(date)s", **v),
        "reminder": lambda: _("Reminder: teleconsultation with %(practitioner)s (%(practice)s) on %(date)s at %(time)s", **v),
        "link_resent": lambda: _("Your link for the teleconsultation with %(practice)s", **v),
        "moved": lambda: _("Your teleconsultation with %(practice)s has moved", **v),
        "cancelled": lambda: _("Your teleconsultation with %(practice)s is cancelled", **v),
        "closed": lambda: _("Your documents from %(practice)s", **v),
        "missed": lambda: _("Your missed teleconsultation with %(practice)s", **v),
        "requested": lambda: _("Your request for a teleconsultation with %(practice)s", **v),
        "declined": lambda: _("Your request for a teleconsultation with %(practice)s was not accepted", **v),
    }[kind]()


def _lead(kind, instant, **v):
    if kind == "invitation" and instant:
        return _("%(practitioner)s (%(practice)s) invites you to a teleconsultation now.", **v)
    return {
        "invitation": lambda: _("%(practice)s has booked a teleconsultation for you with %(practitioner)s on %(date)s at "
                                "%(time)s.", **v),
        "reminder": lambda: _("This is a reminder of your teleconsultation with %(practitioner)s (%(practice)s) "
                              "on %(date)s at %(time)s.", **v),
        "link_resent": lambda: _("Here is your link for the teleconsultation with %(practitioner)s (%(practice)s) "
                                 "on %(date)s at %(time)s.", **v),
        "moved": lambda: _("Your teleconsultation with %(practitioner)s (%(practice)s) has moved to %(date)s at "
                           "%(time)s.", **v),
        "cancelled": lambda: _("Your teleconsultation with %(practitioner)s (%(practice)s) on %(date)s at %(time)s "
                               "is cancelled.", **v),
        "closed": lambda: _("Thank you for your teleconsultation with %(practitioner)s (%(practice)s) on %(date)s.", **v),
        "missed": lambda: _("You did not join your teleconsultation with %(practitioner)s (%(practice)s) on %(date)s "
                            "at %(time)s.", **v),
        "requested": lambda: _("%(practice)s has received your request for a teleconsultation with %(practitioner)s "
                               "on %(date)s at %(time)s. You will receive a message once the practice has confirmed it.",
                               **v),
        "declined": lambda: _("%(practice)s could not accept your request for a teleconsultation with "
                              "%(practitioner)s on %(date)s at %(time)s.", **v),
    }[kind]()


def _action(kind):
    if kind == "requested":
        return _("This link shows your request; you can also cancel it there:")
    if kind in ("cancelled", "declined"):
        return _("Please contact the practice if you need a new appointment.")
    if kind == "closed":
        return _("Your documents and the payment request are waiting in your personal space:")
    if kind == "missed":
        return _("Please contact the practice if you need a new appointment. Any request from the practice waits "
                 "in your personal space:")
    return _("Open this link a few minutes before the start; it works only for this teleconsultation:")


# Typography that is right on a page but outside the GSM 7-bit alphabet: one such character turns
# an SMS into UCS-2, 70 characters a segment instead of 160. The French catalogue's ’ and no-break
# spaces, Babel's narrow no-break space in "10:00 AM", become their plain forms in an SMS only.
SMS_PLAIN = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
                           "\u00ab": '"', "\u00bb": '"', "\u2026": "...", "\u2013": "-", "\u2014": "-"})


def sms_text(text: str) -> str:
    """An SMS body with its typographic characters as GSM 7-bit ones (’ → ', no-break space → space)."""
    return (text or "").translate(SMS_PLAIN)


def _sms(kind, instant, **v):
    if kind == "invitation" and instant:
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        return _("%(practice)s: your teleconsultation with %(practitioner)s starts now. Your link: %(link)s", **v)
    return {
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        "invitation": lambda: _("%(practice)s: teleconsultation with %(practitioner)s on %(date)s at %(time)s. "
                               "Your link: %(link)s", **v),
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        "reminder": lambda: _("%(practice)s: reminder, teleconsultation with %(practitioner)s on %(date)s at %(time)s. "
                              "Your link: %(link)s", **v),
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        "link_resent": lambda: _("%(practice)s: your link for the teleconsultation on %(date)s at %(time)s: "
                                 "%(link)s", **v),
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        "moved": lambda: _("%(practice)s: your teleconsultation with %(practitioner)s has moved to %(date)s at "
                           "%(time)s. Your link: %(link)s", **v),
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        "cancelled": lambda: _("%(practice)s: your teleconsultation on %(date)s at %(time)s is cancelled.", **v),
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        "closed": lambda: _("%(practice)s: your documents and the payment request are waiting in your space: "
                            "%(link)s", **v),
        # Translators: an SMS: keep it short (one SMS is 160 characters, the link included)
        "missed": lambda: _("%(practice)s: you did not join your teleconsultation on %(date)s at %(time)s. Please "
                            "contact the practice if you need a new appointment.", **v),
        "requested": lambda: _("%(practice)s: your request for %(date)s at %(time)s is received; a message will "
                               "confirm it. Your link: %(link)s", **v),
        "declined": lambda: _("%(practice)s: your request for %(date)s at %(time)s could not be accepted. Please "
                              "contact the practice.", **v),
    }[kind]()


def email_content(appt, kind: str, locale: str, link: str) -> dict:
    """Subject, text, HTML and .ics of the e-mail of ``kind`` for this appointment."""
    practice = appt.practice
    instant = appt.kind == "instant"
    v = {"practice": practice.name, "practitioner": appt.practitioner.name, **when(appt, locale)}
    context = {"subject": _subject(kind, **v), "lead": _lead(kind, instant, **v), "action": _action(kind),
               "link": link if kind in WITH_LINK else "", "practice": practice.name, "locale": locale,
               "opens": practice.link_opens_minutes_before if kind in WITH_LINK - AFTER - {"requested"} and not instant
               else None}
    return {"subject": context["subject"],
            "body": render_template("notify/email.txt", **context),
            "html": render_template("notify/email.html", **context),
            "ics": "" if instant or kind not in ICS_METHOD else calendar(appt, kind, context["link"])}


def sms_content(appt, kind: str, locale: str, link: str) -> dict:
    """The text of the SMS of ``kind``: short, and without the patient's name."""
    v = {"practice": appt.practice.name, "practitioner": appt.practitioner.name, "link": link,
         **when(appt, locale, "medium")}
    return {"subject": "", "body": sms_text(_sms(kind, appt.kind == "instant", **v)), "html": "", "ics": ""}


def event_uid(appt) -> str:
    """A stable calendar id that reveals nothing: the same event across invitation, move and cancel."""
    digest = hashlib.sha256(f"{current_app.config['SECRET_KEY']}:ics:{appt.id}".encode()).hexdigest()[:32]
    return f"{digest}@cabinet"


def calendar(appt, kind: str, link: str) -> str:
    """The .ics file: one event, with the practice as organizer; CANCEL withdraws it."""
    method = ICS_METHOD[kind]
    utc = dt.timezone.utc
    cal = Calendar()
    cal.add("prodid", "-//Cabinet//Teleconsultation//EN")
    cal.add("version", "2.0")
    cal.add("method", method)
    event = Event()
    event.add("uid", event_uid(appt))
    event.add("dtstamp", dt.datetime.now(utc).replace(microsecond=0))
    event.add("dtstart", appt.starts_at.replace(tzinfo=utc))
    event.add("dtend", appt.ends_at.replace(tzinfo=utc))
    # SEQUENCE must grow when the event changes: each move makes a new link version, and a cancel comes last.
    event.add("sequence", appt.link_version + (1 if method == "CANCEL" else 0))
    event.add("summary", _("Teleconsultation with %(practice)s", practice=appt.practice.name))
    organizer = vCalAddress(f"mailto:{current_app.config['MAIL_FROM']}")
    organizer.params["cn"] = vText(appt.practice.name)
    event.add("organizer", organizer)
    if method == "CANCEL":
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED")
        event.add("location", link)
        event.add("url", link)
        event.add("description", _("Your link: %(link)s", link=link))
    cal.add_component(event)
    return cal.to_ical().decode("utf-8")
