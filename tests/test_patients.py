"""Patients: create, search, edit, validation."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import HX, login_as, make_patient, text_of
from webapp.models import Patient

VALID = {"first_name": "Élodie", "last_name": "Marchand", "birth_date": "1984-02-29",
         "email": "Elodie.Marchand@Example.org", "phone": "06 98 76 54 32", "locale": "fr"}


def test_create_patient_stores_international_phone(client):
    login_as(client, "secretary")
    response = client.post("/patients/new", data=VALID)
    assert response.status_code == 302
    patient = Patient.get(Patient.last_name == "Marchand")
    assert patient.phone == "+33698765432"
    assert patient.birth_date == dt.date(1984, 2, 29)
    assert patient.email == "Elodie.Marchand@example.org"


@pytest.mark.parametrize("change, message", [
    ({"first_name": "  "}, "Enter the first name."),
    ({"last_name": ""}, "Enter the last name."),
    ({"birth_date": ""}, "Enter the birth date."),
    ({"birth_date": "29/02/1984"}, "Enter a date like 2026-03-31."),
    ({"birth_date": "2999-01-01"}, "The birth date must be in the past."),
    ({"email": "elodie@"}, "Enter a valid e-mail address"),
    ({"phone": "0612"}, "Enter a valid phone number"),
    ({"phone": "+33 1 23"}, "Enter a valid phone number"),
    ({"locale": "xx"}, "Not a valid choice"),
    ({"first_name": "a" * 101}, "At most 100 characters."),
])
def test_patient_validation(client, change, message):
    login_as(client, "secretary")
    for headers in ({}, HX):
        response = client.post("/patients/new", data={**VALID, **change}, headers=headers)
        assert response.status_code == 422 and message in text_of(response)
    assert Patient.select().count() == 0


def test_search_by_name_birth_date_and_phone(client):
    login_as(client, "secretary")
    a = make_patient(first_name="Anne", last_name="Lefèvre", birth_date=dt.date(1950, 1, 2), phone="+33611111111")
    b = make_patient(first_name="Bruno", last_name="Lefort", birth_date=dt.date(1990, 3, 4), phone="+33622222222")
    names = lambda r: text_of(r).lower()  # noqa: E731
    a_name, b_name = a.last_name.lower(), b.last_name.lower()
    found = names(client.get("/patients/?q=lefè"))
    assert a_name in found and b_name not in found
    both = client.get("/patients/?q=lef", headers=HX)
    assert a_name in names(both) and b_name in names(both) and "<html" not in both.get_data(as_text=True)
    by_birth = names(client.get("/patients/?birth=1990-03-04"))
    assert b_name in by_birth and a_name not in by_birth
    by_phone = names(client.get("/patients/?phone=06 22 22 22 22"))
    assert b_name in by_phone and a_name not in by_phone
    assert "no patient found" in names(client.get("/patients/?birth=not-a-date&q=zzz"))


def test_edit_patient(client):
    login_as(client, "practitioner")
    patient = make_patient(last_name="Avant")
    page = client.get(f"/patients/{patient.id}/edit")
    assert "Avant" in page.get_data(as_text=True)
    response = client.post(f"/patients/{patient.id}/edit", data={**VALID, "last_name": "Après"})
    assert response.status_code == 302
    assert Patient.get_by_id(patient.id).last_name == "Après"
    assert Patient.select().count() == 1


def test_failed_edit_changes_nothing(client):
    login_as(client, "practitioner")
    patient = make_patient(last_name="Intact")
    response = client.post(f"/patients/{patient.id}/edit", data={**VALID, "last_name": "Changé", "phone": "12"})
    assert response.status_code == 422
    assert Patient.get_by_id(patient.id).last_name == "Intact"


def test_patient_of_another_practice_is_not_found(client):
    from webapp.models import Practice
    login_as(client, "practitioner")
    other = make_patient(practice=Practice.create(name="Ailleurs"))
    assert client.get(f"/patients/{other.id}").status_code == 404
    assert other.last_name not in text_of(client.get(f"/patients/?q={other.last_name}"))
