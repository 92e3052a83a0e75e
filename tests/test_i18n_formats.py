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
    assert "mar. 10 juin" in text and "Mar. 10" not in text
