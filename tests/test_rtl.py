"""Languages everywhere: right-to-left pages, the language picker on every page, no untranslated text."""
from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import write_po

from conftest import db_snapshot, holding_link, login_as, make_app, make_appointment, make_patient, make_practice, \
    make_user, text_of
from webapp.models import Appointment, AuditEvent, Practice, User, db

ROOT = Path(__file__).resolve().parent.parent


def html_tag(response) -> str:
    return re.search(r"<html[^>]*>", response.get_data(as_text=True)).group(0)


@pytest.fixture
def rtl_app(tmp_path):
    """The app with the real catalogues (Arabic among them) plus an empty Hebrew one, whose pages show
    the English text, mirrored."""
    folder = tmp_path / "translations"
    shutil.copytree(ROOT / "translations", folder, ignore=shutil.ignore_patterns("*.pot"))
    for code in ("he", "ar"):
        messages = folder / code / "LC_MESSAGES"
        if messages.exists():
            continue
        messages.mkdir(parents=True)
        with (messages / "messages.po").open("wb") as fh:
            write_po(fh, Catalog(locale=code))
        with (messages / "messages.mo").open("wb") as fh:
            write_mo(fh, Catalog(locale=code))
    app = make_app(tmp_path, BABEL_TRANSLATION_DIRECTORIES=str(folder))
    make_practice()
    yield app
    if not db.is_closed():
        db.close()


def soon(**fields):
    return make_appointment(starts_in=dt.timedelta(minutes=10), **fields)


def walked_in(app, appt):
    """The patient's browser, through identity, consent and the device check into the waiting room."""
    patient = holding_link(app, appt)
    ref = f"/v/{appt.ref}"
    patient.post(f"{ref}/identity", data={"confirm": "y", "birth_date": "1970-05-17"})
    patient.post(f"{ref}/consent", data={"agree": "y"})
    patient.post(f"{ref}/check", data={"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good"})
    assert patient.get(f"{ref}/waiting").status_code == 200
    assert Appointment.get_by_id(appt.id).status == "waiting"
    return patient


# dir="rtl" on every base template.

@pytest.mark.parametrize("locale, direction", [("he", "rtl"), ("ar", "rtl"), ("fr", "ltr"), ("en", "ltr")])
def test_patient_staff_and_call_pages_carry_the_direction(rtl_app, locale, direction):
    arriving = soon(locale=locale)
    response = holding_link(rtl_app, arriving).get(f"/v/{arriving.ref}/identity")
    assert response.status_code == 200
    assert html_tag(response) == f'<html lang="{locale}" dir="{direction}">'
    appt = soon(locale=locale, status="in_call", admitted_at=dt.datetime(2036, 6, 10, 7, 55),
                identity_confirmed_at=dt.datetime(2036, 6, 10, 7, 50), consent_at=dt.datetime(2036, 6, 10, 7, 51),
                consent_version="x", consent_locale=locale)
    response = holding_link(rtl_app, appt).get(f"/v/{appt.ref}/call")
    assert response.status_code == 200
    assert html_tag(response) == f'<html lang="{locale}" dir="{direction}">'
    staff = rtl_app.test_client()
    login_as(staff, appt.practitioner)
    User.update(locale=locale).where(User.id == appt.practitioner_id).execute()
    for path in ("/agenda/", f"/today/{appt.id}/call"):
        response = staff.get(path)
        assert response.status_code == 200, path
        assert html_tag(response) == f'<html lang="{locale}" dir="{direction}">', path


def test_links_and_phone_numbers_read_left_to_right_in_a_right_to_left_page(app, client):
    """In Arabic the patient's link box showed the link's end, its start cut off ("/cabinet.test/p/…")."""
    import re
    me = login_as(client, "practitioner", locale="ar")
    appt = soon(practitioner=me)
    page = client.get(f"/agenda/{appt.id}")
    html = page.get_data(as_text=True)
    assert 'dir="rtl"' in html_tag(page)
    assert re.search(r'<input[^>]*class="link-box"[^>]*dir="ltr"', html)
    assert f'<bdi dir="ltr">{appt.contact_phone}</bdi>' in html


def test_public_pages_follow_the_browser_s_direction(rtl_app):
    response = rtl_app.test_client().get("/login", headers={"Accept-Language": "he"})
    assert 'dir="rtl"' in html_tag(response)
    response = rtl_app.test_client().get("/login", headers={"Accept-Language": "fr"})
    assert 'dir="ltr"' in html_tag(response)


def test_email_carries_the_direction(rtl_app):
    with rtl_app.test_request_context():
        from flask import render_template
        html = render_template("notify/email.html", locale="ar", subject="s", paragraphs=[], link="https://x",
                               opens=None, practice="P")
    assert '<html lang="ar" dir="rtl">' in html


# No physical left/right in the style sheets: logical properties mirror by themselves.

PHYSICAL = re.compile(r"(?<![\w-])[\w-]*\b(left|right)\b[\w-]*\s*:|(float|clear|text-align)\s*:\s*(left|right)\b"
                      r"|translateX\(")


@pytest.mark.parametrize("sheet", sorted(p.name for p in (ROOT / "static" / "css").glob("*.css")))
def test_style_sheets_use_only_logical_sides(sheet):
    css = re.sub(r"/\*.*?\*/", "", (ROOT / "static" / "css" / sheet).read_text(), flags=re.S)
    found = [m.group(0) for m in PHYSICAL.finditer(css)]
    assert found == [], f"{sheet}: {found}"


def test_the_physical_pattern_catches_what_it_should():
    for bad in (".a { left: 0 }", ".a{margin-right:1rem}", ".a { float: left }", ".a { text-align: right; }",
                ".a { border-top-left-radius: 3px }", ".a { padding-left : 0 }"):
        assert PHYSICAL.search(bad), bad
    for good in (".a { inset-inline-start: 0 }", ".a { margin-inline-end: 1rem }", ".a { text-align: start }",
                 ".left-pane { top: 0 }"):
        assert not PHYSICAL.search(good), good


# The language picker: on every patient page, and for staff.

def picker(response) -> tuple[str, dict]:
    html = response.get_data(as_text=True)
    form = re.search(r'<form class="language" method="post" action="([^"]+)".*?</form>', html, re.S)
    assert form, "no language picker"
    next_ = re.search(r'name="next" value="([^"]*)"', form.group(0)).group(1)
    assert 'data-autosubmit' in form.group(0) and "<noscript><button" in form.group(0)   # works without JS
    return form.group(1), {"next": next_.replace("&amp;", "&")}


@pytest.mark.parametrize("step, french, english", [
    ("identity", "Est-ce bien vous ?", "Is this you?"),
    ("consent", "Votre consentement", "Your consent"),
    ("check", "Vérifiez votre caméra et votre micro", "Check your camera and microphone"),
])
def test_patient_picks_english_on_each_step(app, step, french, english):
    Practice.update(default_locale="fr").execute()
    appt = soon(patient=make_patient(locale=""), locale="", mode="video")
    patient = holding_link(app, appt)
    if step in ("consent", "check"):
        assert patient.post(f"/v/{appt.ref}/identity", data={"confirm": "y", "birth_date": "1970-05-17"}
                            ).status_code == 302
    if step == "check":
        assert patient.post(f"/v/{appt.ref}/consent", data={"agree": "y"}).status_code == 302
    page = patient.get(f"/v/{appt.ref}/{step}")
    assert page.status_code == 200 and french in text_of(page)
    action, form = picker(page)
    assert action == f"/v/{appt.ref}/language" and form["next"] == f"/v/{appt.ref}/{step}"
    answer = patient.post(action, data={**form, "locale": "en"})
    assert answer.status_code == 302 and answer.headers["Location"] == f"/v/{appt.ref}/{step}"
    assert english in text_of(patient.get(answer.headers["Location"]))


def test_staff_pick_their_language_from_any_page(app, client):
    me = login_as(client, "secretary", locale="en")
    page = client.get("/agenda/?day=2036-06-10")
    assert "New teleconsultation" in text_of(page)
    action, form = picker(page)
    assert action == "/account/language" and form["next"] == "/agenda/?day=2036-06-10"
    answer = client.post(action, data={**form, "locale": "fr"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/agenda/?day=2036-06-10"
    assert "Nouvelle téléconsultation" in text_of(client.get("/agenda/?day=2036-06-10"))
    assert User.get_by_id(me.id).locale == "fr"
    event = AuditEvent.get(AuditEvent.action == "staff.locale_chosen")
    assert (event.user_id, event.detail) == (me.id, f"user:{me.id} locale:fr")


@pytest.mark.parametrize("value", ["", "xx", "fr\r\nX: 1", "../en", "<script>"])
def test_staff_bad_language_refused_and_nothing_changed(app, client, value):
    login_as(client, "practitioner", locale="en")
    before = db_snapshot()
    response = client.post("/account/language", data={"locale": value, "next": "/agenda/"})
    assert response.status_code == 422
    assert "Please choose one of the languages in the list. Nothing was changed." in text_of(response)
    assert db_snapshot() == before


def test_staff_language_goes_back_only_to_this_site(app, client):
    login_as(client, "practitioner", locale="en")
    answer = client.post("/account/language", data={"locale": "fr", "next": "//evil.example/"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/"


# Text the patient reads is in their language, wherever it came from.

def test_a_preset_message_reaches_the_patient_in_their_language(app, client):
    doctor = make_user("practitioner", locale="fr")
    appt = soon(practitioner=doctor, patient=make_patient(locale="en"), locale="en")
    patient = walked_in(app, appt)
    login_as(client, doctor)
    assert "J’ai environ 10 minutes de retard." in client.get("/today/").get_data(as_text=True)  # offered in French
    assert client.post(f"/today/{appt.id}/note", data={"text": "J’ai environ 10 minutes de retard."}).status_code \
        in (200, 302, 303)
    assert Appointment.get_by_id(appt.id).waiting_note == "J’ai environ 10 minutes de retard."   # stored as sent
    text = text_of(patient.get(f"/v/{appt.ref}/waiting"))
    assert "I am running about 10 minutes late." in text and "retard" not in text


@pytest.mark.parametrize("minutes, arabic", [(10, "سأتأخر نحو 10 دقائق."), (15, "سأتأخر نحو 15 دقيقة.")])
def test_a_preset_s_minutes_take_the_reader_s_plural(app, client, minutes, arabic):
    """Arabic counts 3 to 10 minutes with one form of the word and 11 to 99 with another."""
    doctor = make_user("practitioner", locale="fr")
    appt = soon(practitioner=doctor, patient=make_patient(locale="ar"), locale="ar")
    patient = walked_in(app, appt)
    login_as(client, doctor)
    client.post(f"/today/{appt.id}/note", data={"text": f"J’ai environ {minutes} minutes de retard."})
    assert arabic in text_of(patient.get(f"/v/{appt.ref}/waiting"))


def test_a_message_typed_by_hand_is_shown_as_typed(app, client):
    doctor = make_user("practitioner", locale="fr")
    appt = soon(practitioner=doctor, patient=make_patient(locale="en"), locale="en",
                waiting_note="Je finis une consultation.")
    text = text_of(walked_in(app, appt).get(f"/v/{appt.ref}/waiting"))
    assert "Je finis une consultation." in text


def test_file_names_use_translated_words(app, client):
    """A French patient's prescription is an "ordonnance"; the staff's export of acts follows their language."""
    from webapp.models import Document
    doctor = make_user("practitioner", locale="fr")
    appt = soon(practitioner=doctor, patient=make_patient(locale="fr"), locale="fr", status="in_call",
                admitted_at=dt.datetime(2036, 6, 10, 7, 55), consent_at=dt.datetime(2036, 6, 10, 7, 50),
                consent_version="x", consent_locale="fr")
    login_as(client, doctor)
    assert client.post(f"/visits/{appt.id}/prescription", data={"text": "Paracétamol 1 g"}).status_code in (200, 302)
    assert Document.get(Document.kind == "prescription").filename == "ordonnance-2036-06-10.pdf"
    response = client.get("/payments/acts.csv", query_string={"start": "2036-06-01", "end": "2036-06-10"})
    assert response.headers["Content-Disposition"] == 'attachment; filename="actes-2036-06-01-2036-06-10.csv"'


def test_a_name_in_another_script_reaches_the_download_header():
    from webapp.uploads import content_disposition
    assert content_disposition("وصفة-2036-06-10.pdf") == (
        "attachment; filename=\"-2036-06-10.pdf\"; "
        "filename*=UTF-8''%D9%88%D8%B5%D9%81%D8%A9-2036-06-10.pdf")
