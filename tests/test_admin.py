"""Administration: staff accounts and practice settings."""
from __future__ import annotations

import pytest

from conftest import HX, login_as, make_user, text_of
from webapp.models import AuditEvent, Practice, User

NEW = {"name": "Dr Nouveau", "email": "nouveau@cabinet.example.org", "role": "practitioner", "locale": "fr",
       "password": "a long enough password", "active": "y"}


def test_admin_creates_staff(client):
    login_as(client, "admin")
    response = client.post("/admin/staff/new", data=NEW)
    assert response.status_code == 302
    user = User.get(User.email == "nouveau@cabinet.example.org")
    assert user.role == "practitioner" and user.password_hash.startswith("$argon2")
    assert "Dr Nouveau" in text_of(client.get("/admin/"))


@pytest.mark.parametrize("change, message", [
    ({"email": "Taken@Cabinet.example.org"}, "Another account already uses this e-mail address."),
    ({"email": "nope"}, "Enter a valid e-mail address"),
    ({"password": ""}, "Choose a password of at least 10 characters."),
    ({"password": "short"}, "At least 10 characters."),
    ({"role": "superuser"}, "Not a valid choice"),
    ({"name": ""}, "Enter the name."),
])
def test_staff_validation(client, change, message):
    login_as(client, "admin")
    make_user("secretary", email="taken@cabinet.example.org")
    before = User.select().count()
    response = client.post("/admin/staff/new", data={**NEW, **change}, headers=HX)
    assert response.status_code == 422 and message in text_of(response)
    assert User.select().count() == before


def test_edit_staff_keeps_password_when_empty(client):
    login_as(client, "admin")
    member = make_user("secretary")
    old_hash = member.password_hash
    response = client.post(f"/admin/staff/{member.id}", data={**NEW, "email": member.email, "password": "",
                                                             "role": "secretary"})
    assert response.status_code == 302
    member = User.get_by_id(member.id)
    assert member.name == "Dr Nouveau" and member.password_hash == old_hash


def test_admin_cannot_lock_themselves_out(client):
    me = login_as(client, "admin")
    response = client.post(f"/admin/staff/{me.id}", data={**NEW, "email": me.email, "role": "secretary"})
    assert response.status_code == 422 and "your own administrator access" in text_of(response)
    assert User.get_by_id(me.id).role == "admin"


def test_a_practitioner_with_visits_to_come_is_not_switched_off_until_they_are_moved(client):
    """Once a practitioner cannot sign in, their agenda leaves every list: their patients would come
    to a waiting room nobody watches, and no one could move or cancel those visits."""
    import datetime as dt
    from conftest import db_snapshot, make_appointment, make_patient
    from webapp.models import Appointment
    login_as(client, "admin")
    leaving, staying = make_user("practitioner"), make_user("practitioner")
    soon = make_appointment(leaving, make_patient(last_name="Garnier"), starts_in=dt.timedelta(days=2))
    make_appointment(leaving, starts_in=dt.timedelta(days=-3), status="closed")         # past: no matter
    make_appointment(leaving, starts_in=dt.timedelta(days=5), status="cancelled")
    off = {**NEW, "name": leaving.name, "email": leaving.email, "password": "", "active": ""}
    before = db_snapshot()
    refused = client.post(f"/admin/staff/{leaving.id}", data=off, headers=HX)
    assert refused.status_code == 422 and "still have upcoming teleconsultations" in text_of(refused)
    assert f'href="/agenda/{soon.id}"' in refused.get_data(as_text=True) and "Garnier" in text_of(refused)
    assert db_snapshot() == before and User.get_by_id(leaving.id).active
    Appointment.update(practitioner=staying).where(Appointment.id == soon.id).execute()    # moved
    assert client.post(f"/admin/staff/{leaving.id}", data=off).status_code == 302
    assert not User.get_by_id(leaving.id).active


def test_a_practitioner_made_secretary_or_with_a_late_patient_waiting_is_refused_the_same_way(client):
    import datetime as dt
    from conftest import make_appointment
    from webapp.models import Appointment
    login_as(client, "admin")
    member = make_user("practitioner")
    late = make_appointment(member, starts_in=dt.timedelta(hours=-2), duration_minutes=20, status="waiting")
    as_is = {**NEW, "name": member.name, "email": member.email, "password": ""}
    for change in ({"role": "secretary"}, {"active": ""}):
        refused = client.post(f"/admin/staff/{member.id}", data={**as_is, **change}, headers=HX)
        assert refused.status_code == 422 and f'href="/agenda/{late.id}"' in refused.get_data(as_text=True)
    assert User.get_by_id(member.id).role == "practitioner" and User.get_by_id(member.id).active
    Appointment.update(status="in_call", call_ended_at=dt.datetime(2036, 6, 10, 6, 0)).where(
        Appointment.id == late.id).execute()           # the call took place and ended: left to close, not to come
    assert client.post(f"/admin/staff/{member.id}", data={**as_is, "role": "secretary"}).status_code == 302
    assert User.get_by_id(member.id).role == "secretary"


def test_an_admin_is_asked_for_the_practice_s_name_until_it_has_one(client):
    Practice.update(name="Cabinet").execute()           # as init-db leaves it
    assert "Your practice has no name yet" not in text_of(client.get("/agenda/"))     # signed out: no banner
    login_as(client, "practitioner")
    assert "Your practice has no name yet" not in text_of(client.get("/agenda/"))
    login_as(client, "admin")
    page = client.get("/agenda/").get_data(as_text=True)
    assert "Your practice has no name yet" in page and 'href="/admin/practice"' in page
    Practice.update(name="Maison de santé des Lilas").execute()
    assert "Your practice has no name yet" not in text_of(client.get("/agenda/"))


def test_practice_settings(client):
    login_as(client, "admin")
    data = {"name": "Maison de santé", "address": "1 place", "timezone": "America/Martinique",
            "default_locale": "en", "link_opens_minutes_before": "20", "link_closes_minutes_after": "45",
            "patient_space_days": "30", "reminder_minutes": "1440, 60, 15", "max_upload_mb": "12",
            "payment_presets": "25, 17,50 30", "payment_instructions": "Virement au cabinet"}
    assert client.post("/admin/practice", data=data).status_code == 302
    practice = Practice.get()
    assert (practice.name, practice.timezone, practice.link_opens_minutes_before) == (
        "Maison de santé", "America/Martinique", 20)
    assert practice.reminders == [1440, 60, 15]
    assert (practice.max_upload_mb, practice.preset_amounts, practice.payment_instructions) == (
        12, [2500, 1750, 3000], "Virement au cabinet")
    # Shown again in euros, as the practice typed them.
    assert 'value="25, 17.50, 30"' in client.get("/admin/practice").get_data(as_text=True)


@pytest.mark.parametrize("change, message", [
    ({"timezone": "Mars/Olympus"}, "Not a valid choice"),
    ({"link_opens_minutes_before": "-5"}, "Between 0 and 1440 minutes."),
    ({"link_closes_minutes_after": "abc"}, "Not a valid integer value"),
    ({"patient_space_days": "0"}, "Between 1 and 365 days."),
    ({"reminder_minutes": "tomorrow"}, "Give up to 5 numbers of minutes"),
    ({"name": ""}, "Enter the name of the practice."),
    ({"max_upload_mb": "100"}, "Between 1 and 25 MB."),
    ({"payment_presets": "25, free"}, "Give up to 8 amounts"),
    ({"payment_presets": "-5"}, "Give up to 8 amounts"),
])
def test_practice_settings_validation(client, change, message):
    login_as(client, "admin")
    data = {"name": "Cabinet", "address": "", "timezone": "Europe/Paris", "default_locale": "fr",
            "link_opens_minutes_before": "15", "link_closes_minutes_after": "60", "patient_space_days": "15",
            "reminder_minutes": "1440,15", "max_upload_mb": "10", "payment_presets": "25", **change}
    response = client.post("/admin/practice", data=data, headers=HX)
    assert response.status_code == 422 and message in text_of(response)
    assert Practice.get().name == "Cabinet des Tilleuls"


def test_sharing_records_is_off_until_an_admin_turns_it_on(client):
    login_as(client, "admin")
    assert Practice.get().share_records is False
    page = client.get("/admin/practice")
    assert '<input id="share_records" name="share_records" type="checkbox" value="y">' in page.get_data(as_text=True)
    assert "The practice's practitioners share their patients' clinical records" in text_of(page)
    assert "Never by secretaries or administrators." in text_of(page)
    data = {"name": "Cabinet", "address": "", "timezone": "Europe/Paris", "default_locale": "fr",
            "link_opens_minutes_before": "15", "link_closes_minutes_after": "60", "patient_space_days": "15",
            "reminder_minutes": "1440,15", "max_upload_mb": "10", "payment_presets": "25"}
    assert client.post("/admin/practice", data={**data, "share_records": "y"}).status_code == 302
    assert Practice.get().share_records is True
    assert '<input checked id="share_records"' in client.get("/admin/practice").get_data(
        as_text=True)
    assert client.post("/admin/practice", data=data).status_code == 302      # an unticked box is sent as nothing
    assert Practice.get().share_records is False
    assert AuditEvent.select().where(AuditEvent.action == "practice.saved").count() == 2


def test_only_an_admin_changes_sharing(client):
    login_as(client, "practitioner")
    assert client.post("/admin/practice", data={"share_records": "y"}).status_code == 403
    assert Practice.get().share_records is False
