"""The patient record: the history page (practitioner vs secretary, filters), the NIR (checked, masked),
duplicates on create, merging two records, and the migration that brings them."""
from __future__ import annotations

import datetime as dt
import os
import sqlite3

import pytest

from conftest import FROZEN_AT, HX, db_snapshot, login_as, make_app, make_appointment, make_patient, make_user, text_of
from webapp.forms import format_nir, mask_nir, normalize_nir
from webapp.models import (Addendum, Appointment, AuditEvent, Document, Message, Patient, Payment, Practice, Report,
                           db, utcnow)
from webapp.storage import documents

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
NIR = "284057512345672"          # 2 84 05 75 123 456 72: a woman born in May 1984 in Paris


# The NIR.

@pytest.mark.parametrize("typed, stored", [
    ("2 84 05 75 123 456 72", NIR),                       # spaces as people type them
    ("284057512345672", NIR),
    ("  2 84 05 75 123456 72 ", NIR),
    ("2 55 08 14 168 025 38", "255081416802538"),         # the example everyone quotes
    ("2 85 02 2A 123 456 32", "285022A12345632"),         # Corsica: 2A counts as 19 for the key
    ("2 85 02 2a 123 456 32", "285022A12345632"),         # lower case accepted, stored upper
    ("1 85 05 2B 004 012 97", "185052B00401297"),         # 2B counts as 18; a key of 97 (number ≡ 0 mod 97)
    ("1 84 05 99 123 456 56", "184059912345656"),         # born abroad
])
def test_valid_nirs_are_stored_without_spaces(typed, stored):
    assert normalize_nir(typed) == stored


@pytest.mark.parametrize("typed", [
    "2 84 05 75 123 456 71",          # wrong key
    "2 84 05 75 123 456 00",          # key 00 never exists
    "2 85 02 2A 123 456 31",          # Corsica with a wrong key
    "2 85 02 2B 123 456 32",          # 2A's key on 2B: the department counts
    "2 84 05 75 123 456 7",           # 14 characters
    "2 84 05 75 123 456 722",         # 16 characters
    "2 84 05 75 123 456",             # no key
    "2 84 05 7A 123 456 72",          # letters other than Corsica's
    "2 84 05 2C 123 456 72",
    "2 84 0A 75 123 456 72",          # a letter outside the department
    "A 84 05 75 123 456 72",
    "5 84 05 75 123 456 72",          # no NIR starts with 5
    "2-84-05-75-123-456-72",          # only spaces separate
    "２８４０５７５１２３４５６７２",  # full-width digits
    "",
])
def test_invalid_nirs_are_refused(typed):
    assert normalize_nir(typed) is None


def test_nir_is_shown_grouped_or_masked():
    assert format_nir(NIR) == "2 84 05 75 123 456 72"
    assert mask_nir(NIR) == "2 84 ** ** *** *** 72"
    assert mask_nir("285022A12345632") == "2 85 ** ** *** *** 32"
    assert format_nir("") == mask_nir("") == ""


VALID = {"first_name": "Élodie", "last_name": "Marchand", "birth_date": "1984-05-02", "email": "", "phone": "",
         "locale": "fr"}


def test_a_nir_typed_with_spaces_is_stored_normalized(client):
    login_as(client, "secretary")
    response = client.post("/patients/new", data={**VALID, "nir": " 2 85 02 2a 123 456 32 "})
    assert response.status_code == 302
    assert Patient.get(Patient.last_name == "Marchand").nir == "285022A12345632"


@pytest.mark.parametrize("nir", ["2 84 05 75 123 456 71", "2 84 05 75 123", "2 84 05 7A 123 456 72"])
def test_a_wrong_nir_is_refused_with_a_message(client, nir):
    login_as(client, "secretary")
    for headers in ({}, HX):
        response = client.post("/patients/new", data={**VALID, "nir": nir}, headers=headers)
        assert response.status_code == 422 and "Enter a valid social security number" in text_of(response)
    assert Patient.select().count() == 0


def test_the_desk_sees_the_nir_masked_and_keeps_it_by_leaving_it_blank(client):
    patient = make_patient(nir=NIR)
    login_as(client, "secretary")
    for path in (f"/patients/{patient.id}", f"/patients/{patient.id}/edit"):
        html = client.get(path).get_data(as_text=True)
        assert "2 84 ** ** *** *** 72" in html
        assert NIR not in html and "2 84 05 75 123 456 72" not in html and "123 456" not in html
    response = client.post(f"/patients/{patient.id}/edit", data={**VALID, "nir": ""})
    assert response.status_code == 302
    assert Patient.get_by_id(patient.id).nir == NIR
    # Typing a new one replaces it.
    client.post(f"/patients/{patient.id}/edit", data={**VALID, "nir": "2 55 08 14 168 025 38"})
    assert Patient.get_by_id(patient.id).nir == "255081416802538"


def test_an_admin_sees_it_masked_too(client):
    patient = make_patient(nir=NIR)
    login_as(client, "admin")
    html = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "2 84 ** ** *** *** 72" in html and "123 456" not in html


def test_practitioners_see_the_nir_whole_and_may_clear_it(client):
    patient = make_patient(nir=NIR)
    login_as(client, "practitioner")
    assert "2 84 05 75 123 456 72" in text_of(client.get(f"/patients/{patient.id}"))
    assert f'value="{NIR}"' in client.get(f"/patients/{patient.id}/edit").get_data(as_text=True)
    assert client.post(f"/patients/{patient.id}/edit", data={**VALID, "nir": ""}).status_code == 302
    assert Patient.get_by_id(patient.id).nir == ""


# The record page.

@pytest.fixture
def history(app):
    """One patient's visits with two practitioners: Alice's closed one with everything, Bruno's closed one,
    Alice's coming one and her cancelled one; and another patient's visit with Alice."""
    alice = make_user("practitioner", name="Dr Alice Martin")
    bruno = make_user("practitioner", name="Dr Bruno Petit")
    patient = make_patient(first_name="Jeanne", last_name="Durand", nir=NIR)

    def closed(practitioner, starts_at, findings, filename, amount, status, consent, patient=patient):
        appt = make_appointment(practitioner, patient, starts_at=starts_at, status="closed",
                                admitted_at=starts_at, call_ended_at=starts_at + dt.timedelta(minutes=15),
                                closed_at=starts_at + dt.timedelta(minutes=20), consent_at=starts_at,
                                consent_version=consent[0], consent_locale=consent[1])
        Report.create(appointment=appt, findings=findings, frozen_at=appt.closed_at)
        with app.app_context():
            key = documents().store(PDF)
        Document.create(appointment=appt, source="closing", kind="prescription", author="practitioner",
                        filename=filename, content_type="application/pdf", size=len(PDF), sha256="0" * 64,
                        storage_key=key)
        Payment.create(appointment=appt, amount_cents=amount, status=status)
        Message.create(appointment=appt, channel="email", kind="closed", recipient=patient.email, status="sent",
                       sent_at=appt.closed_at)
        return appt

    first = closed(alice, dt.datetime(2036, 5, 4, 8, 0), "Toux sèche depuis dix jours", "ordonnance-alice.pdf",
                   2500, "paid", ("2036-01", "fr"))
    Addendum.create(appointment=first, user=alice, text="Radiographie thoracique normale")
    second = closed(bruno, dt.datetime(2036, 5, 20, 12, 0), "Entorse de la cheville", "ordonnance-bruno.pdf",
                    3000, "requested", ("declined", "en"))
    coming = make_appointment(alice, patient, starts_at=dt.datetime(2036, 6, 12, 9, 0), motive="Contrôle")
    Message.create(appointment=coming, channel="sms", kind="invitation", recipient="+33612345678", status="failed",
                   last_error="gateway down")
    cancelled = make_appointment(alice, patient, starts_at=dt.datetime(2036, 6, 1, 9, 0), status="cancelled")
    missed = make_appointment(alice, patient, starts_at=dt.datetime(2036, 6, 2, 9, 0))
    elsewhere = closed(alice, dt.datetime(2036, 5, 5, 8, 0), "Autre patient", "autre.pdf", 4000, "paid",
                       ("2036-01", "fr"), patient=make_patient(last_name="Autre"))
    return {"alice": alice, "bruno": bruno, "patient": patient, "first": first, "second": second,
            "coming": coming, "cancelled": cancelled, "missed": missed, "elsewhere": elsewhere}


def section(html: str, name: str) -> str:
    """The text of one section of the history (empty when the page has none)."""
    start = html.find(f'id="{name}"')
    if start < 0:
        return ""
    end = html.find("</section>", start)
    return html[start:end]


def test_the_secretary_sees_the_administrative_side_only(client, history):
    login_as(client, "secretary")
    response = client.get(f"/patients/{history['patient'].id}")
    assert response.status_code == 200 and "no-store" in response.headers["Cache-Control"]
    html = response.get_data(as_text=True)
    visits = section(html, "visits")
    for shown in ("Dr Alice Martin", "Dr Bruno Petit", "Held", "Upcoming", "Cancelled", "Not held", "Contrôle"):
        assert shown in visits, shown
    assert visits.count('class="visit ') == 5
    payments = section(html, "payments")
    assert "25.00" in payments and "30.00" in payments and "Paid" in payments and "Requested" in payments
    assert "40.00" not in html                                       # the other patient's
    consents = section(html, "consents")
    assert "Given" in consents and "2036-01" in consents and "Français" in consents   # each language in its own name
    assert "Declined" in consents and "English" in consents
    messages = section(html, "messages")
    assert "Documents ready" in messages and "Sent" in messages and "Invitation" in messages and "Failed" in messages
    # Never the clinical side.
    for hidden in ("Toux sèche", "Entorse", "Radiographie", "ordonnance-alice.pdf", "ordonnance-bruno.pdf",
                   'id="reports"', 'id="documents"', "/documents/"):
        assert hidden not in html, hidden
    assert "clinical content" in text_of(response)
    event = AuditEvent.select().where(AuditEvent.action == "patient.viewed").order_by(AuditEvent.id.desc()).get()
    assert event.patient_id == history["patient"].id and event.detail == "record"


def test_the_practitioner_reads_the_clinical_side_of_their_own_visits_only(client, history):
    login_as(client, history["alice"])
    html = client.get(f"/patients/{history['patient'].id}").get_data(as_text=True)
    reports, docs = section(html, "reports"), section(html, "documents")
    assert "Toux sèche depuis dix jours" in reports and "Radiographie thoracique normale" in reports
    assert "ordonnance-alice.pdf" in docs
    assert f"/patients/{history['patient'].id}/documents/" in docs
    # Bruno's visit is not in Alice's agenda and the practice does not share records: not shown at all.
    assert "Entorse" not in html and "ordonnance-bruno.pdf" not in html and "Dr Bruno Petit" not in html
    assert "30.00" not in html and "Autre patient" not in html and "autre.pdf" not in html
    event = AuditEvent.select().where(AuditEvent.action == "patient.viewed").order_by(AuditEvent.id.desc()).get()
    assert event.detail == "record with clinical content"


def test_shared_records_show_every_practitioners_reports(client, history):
    Practice.update(share_records=True).execute()
    login_as(client, history["alice"])
    html = client.get(f"/patients/{history['patient'].id}").get_data(as_text=True)
    assert "Entorse de la cheville" in section(html, "reports") and "ordonnance-bruno.pdf" in section(html, "documents")
    assert "Dr Bruno Petit" in section(html, "visits")
    # Its agenda stays Bruno's: the visit's date is not a link to it.
    assert f"/agenda/{history['second'].id}" not in html and f"/agenda/{history['first'].id}" in html


def test_filters_by_practitioner_and_dates(client, history):
    login_as(client, "secretary")
    pid = history["patient"].id
    by_bruno = client.get(f"/patients/{pid}", query_string={"practitioner": history["bruno"].id}, headers=HX)
    html = by_bruno.get_data(as_text=True)
    assert by_bruno.status_code == 200 and "<html" not in html and 'id="history"' in html
    assert section(html, "visits").count('class="visit ') == 1 and "30.00" in html and "25.00" not in html
    # 4 to 31 May, in the practice's days: Alice's and Bruno's closed visits, not June's.
    may = client.get(f"/patients/{pid}", query_string={"start": "2036-05-04", "end": "2036-05-31"})
    visits = section(may.get_data(as_text=True), "visits")
    assert visits.count('class="visit ') == 2 and "Upcoming" not in visits
    # 20 May only: Bruno's (12:00 UTC is 14:00 in Paris).
    day = client.get(f"/patients/{pid}", query_string={"start": "2036-05-20", "end": "2036-05-20"})
    assert section(day.get_data(as_text=True), "visits").count('class="visit ') == 1
    assert "Dr Bruno Petit" in section(day.get_data(as_text=True), "visits")


@pytest.mark.parametrize("args, message", [
    ({"start": "05/04/2036"}, "Enter a date as YYYY-MM-DD."),
    ({"start": "2036-06-01", "end": "2036-05-01"}, "The end date must not be before the start date."),
    ({"practitioner": "Alice"}, "Choose a practitioner from the list."),
])
def test_bad_filters_say_so(client, history, args, message):
    login_as(client, "secretary")
    response = client.get(f"/patients/{history['patient'].id}", query_string=args)
    assert response.status_code == 422 and message in text_of(response)


def test_documents_download_from_the_record_for_who_reads_them(client, history):
    pid = history["patient"].id
    alices = Document.get(Document.filename == "ordonnance-alice.pdf")
    brunos = Document.get(Document.filename == "ordonnance-bruno.pdf")
    others = Document.get(Document.filename == "autre.pdf")
    login_as(client, history["alice"])
    response = client.get(f"/patients/{pid}/documents/{alices.id}")
    assert response.status_code == 200 and response.data == PDF
    assert "attachment" in response.headers["Content-Disposition"]
    event = AuditEvent.select().where(AuditEvent.action == "document.downloaded").get()
    assert event.user_id == history["alice"].id and event.detail == f"document {alices.id}"
    assert event.appointment_id == history["first"].id
    assert client.get(f"/patients/{pid}/documents/{brunos.id}").status_code == 404     # not hers, not shared
    assert client.get(f"/patients/{pid}/documents/{others.id}").status_code == 404     # another patient's
    login_as(client, "secretary")
    assert client.get(f"/patients/{pid}/documents/{alices.id}").status_code == 403
    assert AuditEvent.select().where(AuditEvent.action == "document.downloaded").count() == 1


def test_outcomes_say_what_became_of_each_visit(client, history, app):
    from webapp.records import visit_outcome
    now = utcnow()
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert visit_outcome(history["first"], now) == "Held"
        assert visit_outcome(history["coming"], now) == "Upcoming"
        assert visit_outcome(history["missed"], now) == "Not held"
        assert visit_outcome(history["cancelled"], now) == "Cancelled"
        assert visit_outcome(Appointment(status="in_call", call_ended_at=now), now) == "Call ended, to close"
        assert visit_outcome(Appointment(status="closed"), now) == "Closed without a call"


def test_a_patient_of_another_practice_has_no_record_here(client):
    login_as(client, "practitioner")
    other = make_patient(practice=Practice.create(name="Ailleurs"))
    for path in ("", "/edit", "/merge"):
        assert client.get(f"/patients/{other.id}{path}").status_code == 404


# Duplicates on create.

def test_a_duplicate_warns_and_offers_the_record_on_file(client):
    existing = make_patient(first_name="Élodie", last_name="Marchand", birth_date=dt.date(1984, 5, 2))
    login_as(client, "secretary")
    for headers in ({}, HX):
        response = client.post("/patients/new", data={**VALID, "first_name": "élodie", "last_name": "MARCHAND "},
                               headers=headers)
        assert response.status_code == 409
        assert "already on file" in text_of(response)
        assert f'href="/patients/{existing.id}"' in response.get_data(as_text=True)
    assert Patient.select().count() == 1
    # Choosing it opens that record; nothing new was created.
    chosen = client.get(f"/patients/{existing.id}")
    assert chosen.status_code == 200 and "MARCHAND Élodie" in text_of(chosen)
    assert Patient.select().count() == 1


def test_another_person_with_the_same_names_is_created_when_staff_say_so(client):
    make_patient(first_name="Élodie", last_name="Marchand", birth_date=dt.date(1984, 5, 2))
    login_as(client, "secretary")
    response = client.post("/patients/new", data={**VALID, "create_anyway": "y"})
    assert response.status_code == 302
    assert Patient.select().where(Patient.last_name == "Marchand").count() == 2


def test_same_names_with_another_birth_date_is_no_duplicate(client):
    make_patient(first_name="Élodie", last_name="Marchand", birth_date=dt.date(1990, 1, 1))
    login_as(client, "secretary")
    assert client.post("/patients/new", data=VALID).status_code == 302


# Merging.

@pytest.fixture
def duplicate(app, history):
    """A second record of Jeanne Durand (typed without her NIR, with an e-mail the first lacks)."""
    keep = history["patient"]
    Patient.update(email="").where(Patient.id == keep.id).execute()
    other = make_patient(first_name="Jeanne", last_name="Durand", birth_date=keep.birth_date,
                         email="jeanne.durand@example.org", nir="")
    appt = make_appointment(history["alice"], other, starts_at=dt.datetime(2036, 4, 1, 8, 0), status="closed",
                            admitted_at=dt.datetime(2036, 4, 1, 8, 0), closed_at=dt.datetime(2036, 4, 1, 8, 30),
                            consent_at=dt.datetime(2036, 4, 1, 8, 0), consent_version="2036-01", consent_locale="fr")
    with app.app_context():
        key = documents().store(PDF)
    Document.create(appointment=appt, source="closing", kind="other", author="practitioner", filename="bilan.pdf",
                    content_type="application/pdf", size=len(PDF), sha256="0" * 64, storage_key=key)
    Payment.create(appointment=appt, amount_cents=2200, status="paid")
    Message.create(appointment=appt, channel="email", kind="invitation", recipient=other.email, status="sent")
    AuditEvent.record(history["alice"], "patient.saved", patient=other)
    AuditEvent.record(history["alice"], "appointment.created", appt)
    return Patient.get_by_id(keep.id), other, appt


def test_merge_shows_what_moves_before_anything_moves(client, history, duplicate):
    keep, other, _ = duplicate
    login_as(client, "secretary")
    page = client.get(f"/patients/{keep.id}/merge")
    assert page.status_code == 200 and f"other={other.id}" in page.get_data(as_text=True)   # same names, offered
    found = client.get(f"/patients/{keep.id}/merge", query_string={"q": "durand"}).get_data(as_text=True)
    assert f"other={other.id}" in found and f"other={keep.id}" not in found
    before = db_snapshot()
    confirm = client.get(f"/patients/{keep.id}/merge", query_string={"other": other.id})
    text = text_of(confirm)
    assert confirm.status_code == 200
    for counted in ("1 visit", "1 document", "1 payment", "1 message", "1 consent", "2 audit events"):
        assert counted in text, counted
    assert "E-mail" in text_of_section(confirm, "merge-fills")
    assert {k: v for k, v in db_snapshot().items() if k != "AuditEvent"} == \
        {k: v for k, v in before.items() if k != "AuditEvent"}


def text_of_section(response, name):
    html = response.get_data(as_text=True)
    start = html.find(f'id="{name}"')
    return html[start:html.find("</ul>", start)] if start >= 0 else ""


def test_merge_moves_everything_and_loses_nothing(client, history, duplicate):
    keep, other, appt = duplicate
    user = login_as(client, "secretary")
    counts = {name: len(rows) for name, rows in db_snapshot().items()}
    events_of_other = [e.id for e in AuditEvent.select().where(AuditEvent.patient == other)]
    response = client.post(f"/patients/{keep.id}/merge", data={"other": str(other.id)})
    assert response.status_code == 302 and response.headers["Location"].startswith(f"/patients/{keep.id}")
    after = {name: len(rows) for name, rows in db_snapshot().items()}
    assert after == {**counts, "AuditEvent": counts["AuditEvent"] + 1}     # every row kept; one event more
    assert Appointment.get_by_id(appt.id).patient_id == keep.id
    assert not Appointment.select().where(Appointment.patient == other).exists()
    assert [e.patient_id for e in AuditEvent.select().where(AuditEvent.id.in_(events_of_other))] == \
        [keep.id] * len(events_of_other)
    kept, merged = Patient.get_by_id(keep.id), Patient.get_by_id(other.id)
    assert kept.email == "jeanne.durand@example.org" and kept.nir == NIR      # blanks filled, nothing overwritten
    assert merged.merged_into_id == keep.id and merged.merged_at is not None
    assert merged.email == "jeanne.durand@example.org"                         # its own details stay on file
    event = AuditEvent.select().where(AuditEvent.action == "patient.merged").get()
    assert event.user_id == user.id and event.patient_id == keep.id
    assert event.detail == f"patient {other.id} into {keep.id}" and "Durand" not in event.detail
    # The kept record shows the moved visit; the merged one leads there and leaves searches.
    record = client.get(f"/patients/{keep.id}?merged={other.id}")
    assert section(record.get_data(as_text=True), "visits").count('class="visit ') == 6      # 5 + the moved one
    assert "bilan.pdf" not in record.get_data(as_text=True) and "are merged" in text_of(record)
    assert client.get(f"/patients/{other.id}").headers["Location"].endswith(f"/patients/{keep.id}")
    assert client.get(f"/patients/{other.id}/edit").status_code == 404
    listed = client.get("/patients/", query_string={"q": "durand"}).get_data(as_text=True)
    assert f"/patients/{keep.id}\"" in listed and f"/patients/{other.id}\"" not in listed


@pytest.mark.parametrize("other", ["self", "merged", "elsewhere", "nobody", "", "12abc"])
def test_a_merge_with_no_proper_other_record_changes_nothing(client, history, duplicate, other):
    keep, duplicate_record, _ = duplicate
    if other == "merged":
        keep.merge(duplicate_record, history["alice"])
    ids = {"self": str(keep.id), "merged": str(duplicate_record.id), "nobody": "999999", "": "", "12abc": "12abc",
           "elsewhere": str(make_patient(practice=Practice.create(name="Ailleurs")).id)}
    login_as(client, "secretary")
    before = db_snapshot()
    response = client.post(f"/patients/{keep.id}/merge", data={"other": ids[other]})
    assert response.status_code == 422 and "Choose" in text_of(response)
    assert db_snapshot() == before


# The migration.

def test_migration_11_gives_an_older_database_its_columns(tmp_path):
    """A database at schema 9 keeps its patients, who get no NIR and are merged into nobody."""
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the old schema here is SQLite's")
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript("""
            CREATE TABLE schemaversion (version INTEGER PRIMARY KEY, applied_at DATETIME);
            INSERT INTO schemaversion VALUES (1, '2026-01-01'), (2, '2026-01-01'), (3, '2026-01-01'),
                (4, '2026-01-01'), (5, '2026-01-01'), (6, '2026-01-01'), (7, '2026-01-01'), (8, '2026-01-01'),
                (9, '2026-01-01');
            CREATE TABLE practice (id INTEGER PRIMARY KEY, name VARCHAR(200));
            CREATE TABLE patient (id INTEGER PRIMARY KEY, practice_id INTEGER NOT NULL REFERENCES practice (id),
                first_name VARCHAR(100), last_name VARCHAR(100), birth_date DATE, email VARCHAR(254),
                phone VARCHAR(20), locale VARCHAR(16), created_at DATETIME);
            INSERT INTO practice VALUES (1, 'Ancien');
            INSERT INTO patient VALUES (1, 1, 'Anne', 'Ancienne', '1950-01-02', '', '', '', '2026-01-01');
        """)
    app = make_app(tmp_path, ENV={"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "x"})
    with app.app_context():
        columns = {c.name for c in db.get_columns("patient")}
        assert {"nir", "merged_into_id", "merged_at"} <= columns
        patient = Patient.get_by_id(1)
        assert patient.last_name == "Ancienne" and patient.nir == "" and patient.merged_into_id is None
        db.close()


def test_a_record_without_visits_says_so(client):
    patient = make_patient()
    login_as(client, "secretary")
    html = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "No visit." in html and "No payment." in html and "No message." in html


def test_a_merged_record_goes_with_the_record_it_was_merged_into(app):
    """Retention deletes a patient with their rows: the records merged into them go too, never left behind
    to come back in searches as patients of their own."""
    keep, other = make_patient(last_name="Garde"), make_patient(last_name="Fusion")
    keep.merge(other, make_user("secretary"))
    Patient.delete().where(Patient.id == keep.id).execute()
    assert not Patient.select().where(Patient.id.in_([keep.id, other.id])).exists()


def test_the_record_shows_the_outcome_recorded_at_closing(client):
    doctor = make_user("practitioner")
    patient = make_patient()
    appt = make_appointment(practitioner=doctor, patient=patient, starts_in=dt.timedelta(days=-1))
    with client.application.app_context():
        appt.record_outcome(doctor, "no_show")
    login_as(client, doctor)
    rows = text_of(client.get(f"/patients/{patient.id}"))
    assert "Patient did not come" in rows and "Not held" not in rows


def test_an_empty_report_frozen_by_a_no_show_is_not_listed(client):
    doctor = make_user("practitioner")
    patient = make_patient()
    missed = make_appointment(practitioner=doctor, patient=patient, starts_in=dt.timedelta(days=-2))
    held = make_appointment(practitioner=doctor, patient=patient, starts_in=dt.timedelta(days=-1))
    Report.create(appointment=missed, frozen_at=FROZEN_AT.replace(tzinfo=None))
    Report.create(appointment=held, findings="Plaie propre", frozen_at=FROZEN_AT.replace(tzinfo=None))
    login_as(client, doctor)
    html = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Plaie propre" in html
    assert html.count('class="report"') == 1
