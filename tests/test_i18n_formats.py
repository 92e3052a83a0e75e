"""Numbers, amounts and dates as the reader writes them: decimal comma in French, the English of the
practice's country for dates."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from conftest import HX, login_as, make_appointment, text_of
from webapp.models import Payment, Practice, utcnow


def field_value(html: str, name: str) -> str:
    return re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html).group(1)


@pytest.fixture
def visit(app):
    now = utcnow()
    return make_appointment(starts_in=-dt.timedelta(minutes=30), status="in_call",
                            admitted_at=now - dt.timedelta(minutes=28), call_ended_at=now - dt.timedelta(minutes=5))


@pytest.mark.parametrize("locale, typed, shown, amount", [
    ("fr", "30,00", "30,00", "30,00\u00a0€"),
    ("fr", "30.5", "30,50", "30,50\u00a0€"),
    ("fr", "30", "30,00", "30,00\u00a0€"),
    ("en", "30,00", "30.00", "€30.00"),
    ("en", "30.00", "30.00", "€30.00"),
])
def test_an_amount_is_shown_back_as_the_reader_types_it(client, visit, locale, typed, shown, amount):
    doctor = visit.practitioner
    doctor.locale = locale
    doctor.save()
    login_as(client, doctor)
    response = client.post(f"/visits/{visit.id}/payment", data={"amount": typed}, headers=HX)
    assert response.status_code == 200
    assert Payment.get().amount_cents == int(shown.replace(",", "").replace(".", ""))
    page = client.get(f"/visits/{visit.id}/close").get_data(as_text=True)
    assert field_value(page, "amount") == shown
    assert amount in page
    assert f'placeholder="25{shown[2]}00"' in page          # the example, too, with the reader's decimal mark


def test_the_example_amount_follows_each_reader_in_one_process(app, visit):
    """Jinja once computed ``2500|amount_typed`` when it compiled the template: whoever opened the
    checklist first chose the example's decimal mark for everyone after, in that process."""
    doctor = visit.practitioner
    for locale, example in (("en", "25.00"), ("fr", "25,00"), ("en", "25.00")):
        doctor.locale = locale
        doctor.save()
        client = app.test_client()
        login_as(client, doctor)
        page = client.get(f"/visits/{visit.id}/close").get_data(as_text=True)
        assert f'placeholder="{example}"' in page, locale


@pytest.mark.parametrize("locale, typed, error", [
    ("fr", "30,00,00", "Saisissez un montant en euros, par exemple 25 ou 25,50."),
    ("fr", "1 000.5e1", "Saisissez un montant en euros, par exemple 25 ou 25,50."),
    ("en", "thirty", "Enter an amount in euros like 25 or 25,50."),
])
def test_garbage_amounts_are_refused_in_the_reader_language(client, visit, locale, typed, error):
    doctor = visit.practitioner
    doctor.locale = locale
    doctor.save()
    login_as(client, doctor)
    response = client.post(f"/visits/{visit.id}/payment", data={"amount": typed}, headers=HX)
    assert response.status_code == 422
    assert error in text_of(response).replace("\u202f", " ").replace("\u00a0", " ")
    assert Payment.select().count() == 0


def test_the_practice_presets_are_shown_with_the_reader_decimal_mark(client):
    login_as(client, "admin", locale="fr")
    Practice.update(payment_presets="2500,1750").execute()
    assert field_value(client.get("/admin/practice").get_data(as_text=True), "payment_presets") == "25, 17,50"


@pytest.mark.parametrize("tz, long_date, heading", [
    ("Europe/Paris", "10 June 2036", "Tuesday, 10 June 2036"),
    ("Europe/London", "10 June 2036", "Tuesday, 10 June 2036"),
    ("America/New_York", "June 10, 2036", "Tuesday, June 10, 2036"),
    ("UTC", "June 10, 2036", "Tuesday, June 10, 2036"),       # no country: the language's own style
])
def test_english_dates_follow_the_practice_country(app, client, tz, long_date, heading):
    from flask_babel import force_locale
    from webapp.i18n import format_date
    Practice.update(timezone=tz).execute()
    login_as(client, "practitioner", locale="en")
    assert heading in text_of(client.get("/agenda/?date=2036-06-10"))
    with app.test_request_context(), force_locale("en"):
        from flask import g
        g.practice = Practice.get()
        assert format_date(dt.date(2036, 6, 10), "long") == long_date


@pytest.mark.parametrize("language, tz, expected", [
    ("en", "Europe/Paris", "en_FR"), ("en", "Europe/London", "en_GB"), ("en", "America/New_York", "en_US"),
    ("de", "Europe/Zurich", "de_CH"), ("fr", "America/Toronto", "fr_CA"), ("fr", "Europe/Paris", "fr_FR"),
    ("ar", "Europe/Paris", "ar"),            # no Arabic of France in the CLDR: the language alone
    ("pt", "Europe/Lisbon", "pt"),           # the catalogue is one variant; not mixed with another's dates
    ("en", "", "en"),
])
def test_dates_locale(language, tz, expected):
    from webapp.i18n import dates_locale
    assert str(dates_locale(language, tz)) == expected


def test_no_stylesheet_capitalises_what_babel_wrote():
    """French writes "mardi 10 juin": weekday and month names keep the case the locale gives them."""
    from pathlib import Path
    for css in (Path(__file__).resolve().parent.parent / "static").rglob("*.css"):
        text = css.read_text()
        assert "capitalize" not in text and "first-letter" not in text, css.name


def test_french_week_days_are_not_capitalised(client):
    login_as(client, "practitioner", locale="fr")
    text = text_of(client.get("/agenda/?date=2036-06-10&view=week"))
    assert "mar. 10" in text and "juin" in text and "Mar. 10" not in text and "Juin" not in text


# French typography: ’ not ', a no-break space before : ; ? ! and inside « ». Placeholders, tags and
# addresses are left out (a URL's "?" or a time's "10:00" is no punctuation).
_PROTECTED = re.compile(r"%\(\w+\)[sd]|%[sd]|<[^>]*>|https?://\S+|\{[\w.]+\}")
_NO_BREAK = "\u00a0\u202f"


def typography_faults(text: str) -> list[str]:
    text = _PROTECTED.sub("X", text)
    faults = ["'"] if "'" in text else []
    for mark in re.finditer(r"[:;?!](?=$|[\s)»\"])", text):
        if mark.start() == 0 or text[mark.start() - 1] not in _NO_BREAK:
            faults.append(f"no no-break space before {mark.group()}")
    if re.search(rf"«(?![{_NO_BREAK}])|(?<![{_NO_BREAK}])»", text):
        faults.append("« » without no-break spaces")
    return faults


@pytest.mark.parametrize("text, faults", [
    ("Ajouter l’acte", []), ("Ajouter l'acte", ["'"]),
    ("Connexion\u00a0: bonne", []), ("Connexion : bonne", ["no no-break space before :"]),
    ("Est-ce bien vous\u202f?", []), ("Est-ce bien vous?", ["no no-break space before ?"]),
    ("à %(time)s, à 10:00, https://exemple.fr/?a=1", []),
    ("comme «\u202fnon venu\u202f»", []), ("comme « non venu »", ["« » without no-break spaces"]),
])
def test_the_typography_check_itself(text, faults):
    assert typography_faults(text) == faults


def test_french_catalogue_follows_french_typography():
    from test_i18n import catalog
    found = []
    for message in catalog("fr"):
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        found += [(text, typography_faults(text)) for text in strings if message.id and typography_faults(text)]
    assert found == [], f"{len(found)} French strings, e.g. {found[:3]}"


# GSM 03.38's basic alphabet: an SMS wholly in it takes 160 characters a segment, not UCS-2's 70.
GSM_7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
            "¿abcdefghijklmnopqrstuvwxyzäöñüà")


@pytest.mark.parametrize("kind", ["invitation", "reminder", "link_resent", "cancelled"])
def test_french_sms_stay_in_the_gsm_alphabet_while_the_email_keeps_its_typography(app, kind):
    from webapp import notify
    from webapp.models import Appointment
    appt = make_appointment(starts_in=dt.timedelta(days=2), patient=None, locale="fr", contact_email="j@example.org",
                            contact_phone="+33612345678", notify_sms=True)
    with app.app_context():
        messages = {m.channel: m for m in notify.queue(Appointment.get_by_id(appt.id), kind)}
    sms, email = messages["sms"].body, messages["email"]
    assert any(c in email.body for c in "’\u00a0\u202f")                       # French typography kept there
    assert set(sms) <= GSM_7 | set("/"), sorted(set(sms) - GSM_7)
    assert " : " in sms                                                         # "Cabinet des Tilleuls : ..."


def test_an_sms_queued_with_typography_is_sent_plain(app):
    from webapp.notify import outbox
    from webapp.notify.compose import sms_text
    assert sms_text("Cabinet\u00a0: l’appel à 10:00\u202fAM\u202f?") == "Cabinet : l'appel à 10:00 AM ?"
    sent = []
    app.config.update(SMS_BACKEND="http")
    with app.app_context():
        from webapp.notify import deliver
        original = deliver.SMS_BACKENDS["http"]
        deliver.SMS_BACKENDS["http"] = lambda config: type("Gateway", (), {"send": lambda self, to, text:
                                                                           sent.append(text)})()
        try:
            outbox._deliver(type("Row", (), {"channel": "sms", "recipient": "+33612345678",
                                             "body": "Cabinet\u00a0: c’est l’heure"})(), app.config)
        finally:
            deliver.SMS_BACKENDS["http"] = original
    assert sent == ["Cabinet : c'est l'heure"]


def test_pdf_fonts_hold_every_character_of_the_french_catalogue():
    """PDFs draw the catalogue's ’, no-break spaces and « » with the vendored fonts: none may be missing."""
    from pathlib import Path
    from fontTools.ttLib import TTFont
    from test_i18n import catalog
    used = set()
    for message in catalog("fr"):
        if message.id:
            used |= set("".join(message.string) if isinstance(message.string, tuple) else message.string)
    used -= {"\n"}
    assert {"’", "\u00a0", "\u202f", "«", "»"} <= used
    for font in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        with TTFont(Path(__file__).resolve().parent.parent / "webapp" / "fonts" / font) as ttf:
            cmap = ttf.getBestCmap()
        assert sorted(c for c in used if ord(c) not in cmap) == [], font


def test_french_report_prints_the_typographic_apostrophe(app):
    from test_report_pdf import build, closed_visit
    text = build(app, closed_visit(), "fr")
    assert "échangé pendant l’appel" in text and "30,00 €" in text and "10 mars 2026, 10:02:00" in text
