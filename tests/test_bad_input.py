"""Bad input anywhere gets a clear 4xx or is taken harmlessly: never a 500, and a refusal changes nothing.

First a smoke table: every query parameter and form field of the app, tried missing, empty, blank,
100 KB long, with a NUL byte, non-UTF-8, negative, huge, "²", at the ends of the calendar and with
CR/LF. Then the security review's findings one by one, with the message a user sees.
"""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import pytest

from conftest import HX, PASSWORD, db_snapshot, login_as, make_appointment, make_patient, make_user, text_of
from webapp.access import patient_link_url
from webapp.models import Appointment, Patient, Payment, Practice, VisitAct

NASTY = {
    "missing": None, "empty": "", "blank": "   ", "100 KB": "x" * 100_000, "NUL": "a\x00b",
    "non-UTF-8": b"%ff%fe", "negative": "-1", "huge": "99999999999999999999", "superscript": "²",
    "year 1": "0001-01-01", "year 9999": "9999-12-31", "CRLF": "/x\r\nSet-Cookie: a=b",
}
TODAY = "2036-06-10"      # the frozen clock's day in Paris
NUL_MESSAGE = "This request holds a character that is not allowed (a null byte). Nothing was changed."
NOT_FOUND = "This page does not exist."
DAY_RANGE = "Enter a date between 1900-01-01 and 2999-12-31."


@pytest.fixture
def world(app):
    """A practitioner, an admin, a patient in the waiting window, a past visit with a payment; clients for each."""
    doctor = make_user("practitioner", name="Dr Alice Martin")
    admin = make_user("admin")
    other = make_user("secretary")
    patient = make_patient(first_name="Jeanne", birth_date=dt.date(1980, 4, 2))
    appt = make_appointment(doctor, patient, starts_in=dt.timedelta(minutes=5))
    past = make_appointment(doctor, make_patient(), starts_in=dt.timedelta(hours=-2))
    payment = Payment.create(appointment=past, amount_cents=2500)
    act = VisitAct.create(appointment=past, code="TC", label="Téléconsultation", fee_cents=2500)
    clients = {"anon": app.test_client(), "staff": app.test_client(), "admin": app.test_client(),
               "patient": app.test_client()}
    login_as(clients["staff"], doctor)
    login_as(clients["admin"], admin)
    with app.test_request_context():
        link = patient_link_url(appt).replace("https://cabinet.test", "")
    assert clients["patient"].get(link).status_code == 302
    # The act catalogue is seeded on the first checklist page; seed it now, so it is not a change later.
    assert clients["staff"].get(f"/visits/{past.id}/close").status_code == 200
    ids = {"doctor": doctor.id, "other": other.id, "patient": patient.id, "appt": appt.id, "past": past.id,
           "payment": payment.id, "visit_act": act.id, "ref": appt.ref, "today": TODAY}
    return clients, ids


# (who, path, a valid query or form); every value may name an id of ``world`` as {name}.
QUERIES = [
    ("anon", "/login", {"next": "/agenda/"}),
    ("staff", "/agenda/", {"date": "{today}", "view": "week", "practitioner": "{doctor}"}),
    ("staff", "/agenda/new", {"date": "{today}", "practitioner": "{doctor}", "patient": "{patient}"}),
    ("staff", "/agenda/overlaps", {"date": "{today}", "time": "14:00", "duration": "15", "practitioner": "{doctor}",
                                   "appointment": "{appt}"}),
    ("staff", "/patients/", {"q": "Jeanne", "birth": "1980-04-02", "phone": "0612345678"}),
    ("staff", "/patients/choices", {"patient_query": "Jea"}),
    ("staff", "/payments/", {"start": "2036-06-01", "end": "{today}", "practitioner": "{doctor}",
                             "status": "requested"}),
    ("staff", "/payments/acts.csv", {"start": "2036-06-01", "end": "{today}", "practitioner": "{doctor}"}),
    ("staff", "/today/", {"x": "1"}),
    ("staff", "/visits/open", {"x": "1"}),
    ("patient", "/v/{ref}/", {"x": "1"}),
]
FORMS = [
    ("anon", "/login", {"email": "nobody@example.org", "password": "not the password"}),
    ("anon", "/lost-link", {"contact": "someone@example.org"}),
    ("staff", "/agenda/new", {"patient_id": "{patient}", "patient_query": "", "practitioner": "{doctor}",
                              "date": "2036-06-11", "time": "14:00", "duration": "15", "motive": "Suivi",
                              "mode": "video", "send_by": "both", "confirm_overlap": "y"}),
    ("staff", "/agenda/{appt}/edit", {"patient_id": "{patient}", "practitioner": "{doctor}", "date": "2036-06-11",
                                      "time": "15:00", "duration": "15", "motive": "Suivi", "mode": "video",
                                      "send_by": "both", "confirm_overlap": "y"}),
    ("staff", "/agenda/instant", {"email": "a@example.org", "phone": "0612345678", "practitioner": "{doctor}",
                                  "mode": "video"}),
    ("staff", "/patients/new", {"first_name": "Anne", "last_name": "Durand", "birth_date": "1980-01-01",
                                "email": "anne@example.org", "phone": "0612345678", "locale": "fr"}),
    ("staff", "/patients/{patient}/edit", {"first_name": "Anne", "last_name": "Durand", "birth_date": "1980-01-01",
                                      "email": "anne@example.org", "phone": "0612345678", "locale": "fr"}),
    ("admin", "/admin/staff/new", {"name": "Nina", "email": "nina@example.org", "role": "secretary", "locale": "fr",
                                   "password": "a long enough password", "active": "y"}),
    ("admin", "/admin/staff/{other}", {"name": "Nina", "email": "nina2@example.org", "role": "secretary",
                                       "locale": "fr", "password": "", "active": "y"}),
    ("admin", "/admin/practice", {"name": "Cabinet", "address": "", "timezone": "Europe/Paris",
                                  "default_locale": "en", "link_opens_minutes_before": "15",
                                  "link_closes_minutes_after": "60", "patient_space_days": "15",
                                  "reminder_minutes": "1440,15", "max_upload_mb": "10", "payment_presets": "25,30",
                                  "payment_instructions": ""}),
    ("staff", "/today/{appt}/note", {"text": "Five minutes late"}),
    ("staff", "/today/{appt}/send-back", {"time": "16:00"}),
    ("staff", "/visits/{past}/report", {"findings": "f", "decisions": "d", "prescriptions": "p"}),
    ("staff", "/visits/{past}/incidents", {"detail": "sound lost"}),
    ("staff", "/visits/{past}/prescription", {"text": "Paracétamol", "weight": "72,5"}),
    ("staff", "/visits/{past}/acts", {"code": "TC", "fee": "25"}),
    ("staff", "/visits/{past}/payment", {"amount": "25", "preset": "2500"}),
    ("staff", "/visits/{past}/waivers/documents", {"reason": "none needed"}),
    ("staff", "/visits/{past}/addenda", {"text": "Called back"}),
    ("staff", "/visits/{past}/close", {"findings": "f"}),
    ("admin", "/visits/acts", {"code": "ZZ", "label": "Other", "fee": "10", "profession": "nurse", "active": "y"}),
    ("staff", "/profile/", {"profession": "doctor", "specialty": "Pédiatrie", "rpps": "10101234564",
                            "am_number": "691234567", "practice_address": "12 rue des Tilleuls",
                            "practice_phone": "0478123456"}),
    ("admin", "/admin/staff/{doctor}/profile", {"profession": "nurse", "specialty": "", "rpps": "10101234564",
                                                "am_number": "691234567", "practice_address": "1 place Bellecour",
                                                "practice_phone": "+33478123456"}),
    ("staff", "/payments/{payment}/paid", {"start": "2036-06-01", "end": "{today}", "practitioner": "{doctor}",
                                           "status": "paid"}),
    ("staff", "/payments/{payment}/cancel", {"start": "2036-06-01", "status": "requested"}),
    ("patient", "/v/{ref}/language", {"locale": "fr", "next": "/v/{ref}/identity"}),
    ("patient", "/v/{ref}/identity", {"confirm": "y", "birth_date": "1980-04-02"}),
    ("patient", "/v/{ref}/consent", {"agree": "y", "decision": ""}),
    ("patient", "/v/{ref}/check", {"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good",
                                   "rtt": "40"}),
]


def _encoded(fields: dict, ids: dict, name: str, value) -> str:
    """``fields`` as a query string, with ``name`` set to ``value`` (None: left out; bytes: sent as is)."""
    fields = {k: v.format(**ids) for k, v in fields.items() if k != name}
    text = urlencode(fields)
    if value is None:
        return text
    raw = value.decode() if isinstance(value, bytes) else urlencode({name: value})[len(name) + 1:]
    return f"{text}&{name}={raw}" if text else f"{name}={raw}"


def _cases(table):
    return [pytest.param(who, path, fields, name, id=f"{path} {name}") for who, path, fields in table
            for name in fields]


# Closing keeps the report as typed before it checks the list, then may refuse the close (422).
KEEPS_DRAFT = {"/visits/{past}/close": "Report"}
# A failed sign-in (401) is audited: there the audit trail grows, and nothing else may change.
AUDITS_REFUSAL = {"/login"}


def _try_each(client, method, path, fields, name, ids):
    """Send ``name`` with each nasty value; a 500 or a refusal that changed the database fails."""
    url = path.format(**ids)
    kept = KEEPS_DRAFT.get(path)
    for label, value in NASTY.items():
        before = db_snapshot()
        query = _encoded(fields, ids, name, value)
        if method == "GET":
            response = client.get(f"{url}?{query}")
        else:
            response = client.post(url, data=query, content_type="application/x-www-form-urlencoded")
        assert response.status_code < 500, (label, response.status_code)
        if label == "NUL":
            assert response.status_code == 400 and NUL_MESSAGE in text_of(response)
        if response.status_code >= 400:
            after = db_snapshot()
            if kept and response.status_code == 422:
                before.pop(kept), after.pop(kept)
            if path in AUDITS_REFUSAL and response.status_code == 401:
                before.pop("AuditEvent"), after.pop("AuditEvent")
            assert after == before, label
        assert "a=b" not in response.headers.get("Set-Cookie", ""), label


@pytest.mark.parametrize("who, path, fields, name", _cases(QUERIES))
def test_query_parameters_never_cause_a_500(world, who, path, fields, name):
    clients, ids = world
    _try_each(clients[who], "GET", path, fields, name, ids)


@pytest.mark.parametrize("who, path, fields, name", _cases(FORMS))
def test_form_fields_never_cause_a_500(world, who, path, fields, name):
    clients, ids = world
    _try_each(clients[who], "POST", path, fields, name, ids)


# Ids past 2^63 - 1 overflowed SQLite's driver: every <int:...> in a route is now bounded.
HUGE = "99999999999999999999"
TOO_BIG = str(2**63)


@pytest.mark.parametrize("who, method, path", [
    ("staff", "GET", f"/agenda/{HUGE}"),
    ("staff", "GET", f"/agenda/{TOO_BIG}"),
    ("staff", "GET", f"/agenda/{2**63 - 1}"),
    ("staff", "GET", "/agenda/0"),
    ("staff", "GET", f"/agenda/{HUGE}/edit"),
    ("staff", "POST", f"/agenda/{HUGE}/cancel"),
    ("staff", "POST", f"/agenda/{HUGE}/link"),
    ("staff", "POST", "/agenda/{appt}/messages/" + HUGE + "/retry"),
    ("staff", "GET", f"/today/{HUGE}/call"),
    ("staff", "POST", f"/today/{HUGE}/admit"),
    ("staff", "POST", f"/today/{HUGE}/note"),
    ("staff", "GET", "/today/{appt}/files/" + HUGE),
    ("staff", "GET", f"/visits/{HUGE}/close"),
    ("staff", "POST", f"/visits/{HUGE}/close"),      # 405: werkzeug matches GET .../close's path first
    ("staff", "GET", "/visits/{past}/documents/" + HUGE),
    ("staff", "POST", "/visits/{past}/acts/" + HUGE + "/delete"),
    ("admin", "GET", f"/visits/acts/{HUGE}"),
    ("staff", "GET", f"/patients/{HUGE}"),
    ("staff", "POST", f"/payments/{HUGE}/paid"),
    ("admin", "GET", f"/admin/staff/{HUGE}"),
    ("patient", "GET", "/v/{ref}/files/" + HUGE),
    ("patient", "GET", "/v/{ref}/space/documents/" + HUGE),
])
def test_ids_out_of_range_are_not_found(world, who, method, path):
    clients, ids = world
    before = db_snapshot()
    response = clients[who].open(path.format(**ids), method=method)
    if path == f"/visits/{HUGE}/close" and method == "POST":
        assert response.status_code == 405 and "This action is not available here." in text_of(response)
    else:
        assert response.status_code == 404 and NOT_FOUND in text_of(response)
    assert db_snapshot() == before


# Days at the ends of the calendar overflowed date arithmetic (a week's Monday, the UTC shift).
@pytest.mark.parametrize("query, heading", [
    ("date=0001-01-01", "Monday, 1 January 1900"),
    ("date=1899-12-31", "Monday, 1 January 1900"),
    ("date=9999-12-31", "Tuesday, 31 December 2999"),
    ("date=9999-12-31&view=week", "30 Dec 2999 – 5 Jan 3000"),
    ("date=0001-01-01&view=week", "1–7 Jan 1900"),
    ("date=2036-06-10", "Tuesday, 10 June 2036"),
    ("date=not-a-day", "Tuesday, 10 June 2036"),
])
def test_agenda_days_out_of_range_show_the_nearest_day(world, query, heading):
    clients, _ = world
    before = db_snapshot()
    response = clients["staff"].get(f"/agenda/?{query}")
    assert response.status_code == 200 and heading in text_of(response)
    assert db_snapshot() == before


@pytest.mark.parametrize("change, message", [
    ({"date": "0001-01-01"}, DAY_RANGE),
    ({"date": "9999-12-31"}, DAY_RANGE),
    ({"date": "1899-12-31"}, DAY_RANGE),
    ({"date": "   "}, "Enter the date."),
    ({"time": "   "}, "Enter the time."),
    ({"patient_id": "²"}, "Choose a patient from the list."),
    ({"patient_id": HUGE}, "Choose a patient from the list."),
    ({"patient_id": "-1"}, "Choose a patient from the list."),
])
@pytest.mark.parametrize("path", ["/agenda/new", "/agenda/{appt}/edit"])
def test_booking_refuses_what_it_cannot_store(world, path, change, message):
    clients, ids = world
    data = {"patient_id": str(ids["patient"]), "practitioner": str(ids["doctor"]), "date": "2036-06-11",
            "time": "14:00", "duration": "15", "motive": "Suivi", "mode": "video", "send_by": "both", **change}
    before = db_snapshot()
    for headers in ({}, HX):
        response = clients["staff"].post(path.format(**ids), data=data, headers=headers)
        assert response.status_code == 422 and message in text_of(response)
    assert db_snapshot() == before


@pytest.mark.parametrize("query", ["date=0001-01-01&time=10:00&duration=15", "date=9999-12-31&time=23:59&duration=60",
                                   f"date=2036-06-11&time=10:00&duration=15&appointment={HUGE}"])
def test_overlap_check_with_days_or_ids_out_of_range_finds_nothing(world, query):
    clients, ids = world
    response = clients["staff"].get(f"/agenda/overlaps?{query}&practitioner={ids['doctor']}", headers=HX)
    assert response.status_code == 200 and "overlap" not in text_of(response).lower()


def test_a_booking_without_a_motive_is_taken_with_an_empty_one(world):
    clients, ids = world
    data = {"patient_id": str(ids["patient"]), "practitioner": str(ids["doctor"]), "date": "2036-06-11",
            "time": "14:00", "duration": "15", "mode": "video", "send_by": "both"}
    response = clients["staff"].post("/agenda/new", data=data)
    assert response.status_code == 302
    booked = Appointment.select().order_by(Appointment.id.desc()).get()
    assert booked.motive == "" and booked.patient_id == ids["patient"]


def test_a_patient_without_an_email_field_is_saved_without_one(world):
    clients, _ = world
    response = clients["staff"].post("/patients/new", data={"first_name": "Anne", "last_name": "Sansmail",
                                                            "birth_date": "1980-01-01", "phone": "0612345678",
                                                            "locale": ""})
    assert response.status_code == 302
    assert Patient.get(Patient.last_name == "Sansmail").email == ""


@pytest.mark.parametrize("path", ["/payments/", "/payments/acts.csv"])
@pytest.mark.parametrize("args, message", [
    ({"start": "0001-01-01"}, DAY_RANGE),
    ({"end": "9999-12-31"}, DAY_RANGE),
    ({"start": "1899-12-31", "end": "1900-01-02"}, DAY_RANGE),
    ({"start": "0001-13-01"}, "Enter a date as YYYY-MM-DD."),
])
def test_payment_filters_out_of_range_are_explained(world, path, args, message):
    clients, _ = world
    before = db_snapshot()
    response = clients["staff"].get(path, query_string=args)
    assert response.status_code == 422 and message in text_of(response)
    assert db_snapshot() == before


@pytest.mark.parametrize("reminders", ["²", "1440,²", "-15", "99999999999999999999"])
def test_reminders_that_are_not_plain_numbers_are_explained(world, reminders):
    clients, _ = world
    data = {"name": "Cabinet", "address": "", "timezone": "Europe/Paris", "default_locale": "en",
            "link_opens_minutes_before": "15", "link_closes_minutes_after": "60", "patient_space_days": "15",
            "reminder_minutes": reminders, "max_upload_mb": "10", "payment_presets": "25,30",
            "payment_instructions": ""}
    before = db_snapshot()
    response = clients["admin"].post("/admin/practice", data=data)
    assert response.status_code == 422
    assert "Give up to 5 numbers of minutes between 1 and 10080, like 1440, 15." in text_of(response)
    assert db_snapshot() == before and Practice.get().reminder_minutes == "1440,15"


def test_a_50_kb_patient_search_is_cut_short(world):
    clients, _ = world
    response = clients["staff"].get("/patients/", query_string={"q": "Jeanne " + "x" * 50_000})
    assert response.status_code == 200
    assert "x" * 101 not in response.get_data(as_text=True)


@pytest.mark.parametrize("who, method, path, data", [
    ("staff", "GET", "/patients/?q=Jea%00nne", None),
    ("staff", "GET", "/agenda/%00", None),
    ("patient", "GET", "/v/%00/", None),
    ("anon", "POST", "/login", {"email": "a\x00@example.org", "password": PASSWORD}),
    ("staff", "POST", "/today/{appt}/note", {"text": "late\x00"}),
    ("staff", "POST", "/patients/{patient}/edit", {"first_name": "\x00", "last_name": "Durand",
                                              "birth_date": "1980-01-01"}),
])
def test_nul_bytes_are_refused_with_a_message(world, who, method, path, data):
    clients, ids = world
    before = db_snapshot()
    response = clients[who].open(path.format(**ids), method=method, data=data)
    assert response.status_code == 400 and NUL_MESSAGE in text_of(response)
    assert db_snapshot() == before
