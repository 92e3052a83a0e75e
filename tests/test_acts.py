"""The act catalogue: seeded with the French teleconsultation codes, edited by administrators only."""
from __future__ import annotations

import re

import pytest
from conftest import HX, login_as, make_appointment, make_practice, text_of

from webapp.db import _closing
from webapp.models import Act, AuditEvent, db

SEEDED = {"TC": 2500, "TCG": 2500, "TLD": 1500, "TLS": 1000, "TLL": 1200}


def fees(practice=None):
    return {a.code: a.fee_cents for a in Act.select().where(Act.practice == (practice or make_practice()))}


def test_catalogue_seeded_when_first_needed_and_only_once(app):
    practice = make_practice()
    assert fees() == {}
    assert {a.code: a.fee_cents for a in Act.catalogue(practice)} == SEEDED
    assert Act.seed(practice) == 0
    assert len(list(Act.catalogue(practice))) == 5


def test_migration_seeds_existing_practices(app):
    practice = make_practice()
    with db.atomic():
        _closing(db)           # the step run on a database that already had its practice
    assert fees(practice) == SEEDED


def test_admin_sees_and_edits_the_catalogue(client):
    login_as(client, "admin")
    text = text_of(client.get("/visits/acts"))
    assert "TCG" in text and "Téléconsultation du médecin généraliste" in text and "€25.00" in text
    tc = Act.get(Act.code == "TC")
    response = client.post(f"/visits/acts/{tc.id}", data={"code": "tc", "label": "Téléconsultation (TC)",
                                                          "fee": "26,50", "active": "y"})
    assert response.status_code == 302
    tc = Act.get_by_id(tc.id)
    assert (tc.code, tc.label, tc.fee_cents, tc.active) == ("TC", "Téléconsultation (TC)", 2650, True)
    assert client.post(f"/visits/acts/{tc.id}", data={"code": "TC", "label": "x", "fee": "26"}).status_code == 302
    assert Act.get_by_id(tc.id).active is False
    assert AuditEvent.select().where(AuditEvent.action == "act.saved").count() == 2


def test_admin_adds_an_act(client):
    login_as(client, "admin")
    response = client.post("/visits/acts", data={"code": "TLS2", "label": "Télésoin", "fee": "9", "active": "y"})
    assert response.status_code == 302
    assert fees()["TLS2"] == 900


@pytest.mark.parametrize("form, message", [
    ({"code": "TCG", "label": "Doublon", "fee": "30"}, "Another act already uses this code."),
    ({"code": "", "label": "Sans code", "fee": "30"}, "Enter the code."),
    ({"code": "T C", "label": "Espace", "fee": "30"}, "Letters, digits and + . _ - only, like TCG."),
    ({"code": "NEW", "label": "", "fee": "30"}, "Enter the label."),
    ({"code": "NEW", "label": "Négatif", "fee": "-1"}, "Enter an amount in euros like 25 or 25,50."),
    ({"code": "NEW", "label": "Absurde", "fee": "25000"}, "At most 1000 €."),
    ({"code": "NEW", "label": "Sans tarif", "fee": ""}, "Enter an amount."),
])
def test_catalogue_bad_input(client, form, message):
    login_as(client, "admin")
    Act.catalogue(make_practice())
    response = client.post("/visits/acts", data=form, headers=HX)
    assert response.status_code == 422
    assert message in text_of(response)
    assert response.get_data(as_text=True).lstrip().startswith('<form id="act-form"')
    assert fees() == SEEDED


@pytest.mark.parametrize("role", ["practitioner", "secretary"])
def test_only_admins_edit_the_catalogue(client, role):
    login_as(client, role)
    tc = Act.catalogue(make_practice()).where(Act.code == "TC").get()
    assert client.get("/visits/acts").status_code == 403
    assert client.post(f"/visits/acts/{tc.id}", data={"code": "TC", "label": "x", "fee": "1"}).status_code == 403
    assert client.post("/visits/acts", data={"code": "X", "label": "x", "fee": "1"}).status_code == 403
    assert fees() == SEEDED


def test_inactive_act_not_offered_at_closing(client):
    appt = make_appointment()
    login_as(client, appt.practitioner)
    Act.catalogue(make_practice())
    Act.update(active=False).where(Act.code == "TLL").execute()
    html = client.get(f"/visits/{appt.id}/close").get_data(as_text=True)
    assert 'value="TLD"' in html and 'value="TLL"' not in html


def test_the_act_of_the_visit_type_it_was_booked_as_is_chosen_at_closing(client):
    """A follow-up booked as a visit type whose act is TCG: TCG is offered first, whatever the practitioner's
    profession would suggest; an act no longer in the catalogue falls back to that suggestion."""
    from webapp.models import User, VisitType
    appt = make_appointment()
    User.update(profession="doctor", specialty="").where(User.id == appt.practitioner_id).execute()
    login_as(client, appt.practitioner)
    Act.catalogue(make_practice())

    def chosen() -> list[str]:
        html = client.get(f"/visits/{appt.id}/close").get_data(as_text=True)
        return re.findall(r'<option value="(\w+)" selected>', html)

    assert chosen() == ["TCG"]                       # a general practitioner's own teleconsultation
    kind = VisitType.create(practice=make_practice(), names='{"en": "Remote expertise"}', act_code="TLD")
    appt.visit_type = kind
    appt.save()
    assert chosen() == ["TLD"]
    Act.update(active=False).where(Act.code == "TLD").execute()
    assert chosen() == ["TCG"]
