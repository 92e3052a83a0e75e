"""The audit trail: from where, what leaves an event, the admin's search, and that nobody edits it."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import HX, PASSWORD, holding_link, login_as, make_appointment, make_patient, make_user, text_of
from webapp.db import add_missing_columns
from webapp.models import AuditEvent, AuditTrailIsAppendOnly, db, utcnow


def last(action):
    return AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.id.desc()).first()


# From where.

def test_an_event_in_a_request_records_the_clients_address(app, client):
    user = make_user("practitioner")
    client.post("/login", data={"email": user.email, "password": PASSWORD},
                environ_base={"REMOTE_ADDR": "203.0.113.7"})
    event = last("staff.login")
    assert (event.user_id, event.actor, event.address) == (user.id, "staff", "203.0.113.7")


def test_an_event_outside_a_request_has_no_address(app):
    with app.app_context():
        event = AuditEvent.record("system", "test.event")
    assert event.address == ""


def test_migration_10_adds_the_address_to_an_older_database(app):
    db.execute_sql('ALTER TABLE auditevent DROP COLUMN address')
    add_missing_columns(db, AuditEvent, {"address": AuditEvent.address})
    assert "address" in {c.name for c in db.get_columns("auditevent")}


# What leaves an event.

def test_a_failed_sign_in_names_the_account_but_never_the_password(app, client):
    user = make_user("practitioner")
    response = client.post("/login", data={"email": user.email, "password": "wrong password here"},
                           environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert response.status_code == 401
    event = last("staff.login_failed")
    assert (event.user_id, event.actor, event.detail, event.address) == (None, "anonymous", f"user:{user.id}",
                                                                        "198.51.100.4")
    assert all("wrong password" not in str(v) for v in AuditEvent.select().tuples())


def test_a_failed_sign_in_with_an_unknown_e_mail_keeps_nothing_of_it(app, client):
    client.post("/login", data={"email": "someone.else@example.org", "password": "whatever 1234"})
    event = last("staff.login_failed")
    assert event.detail == "" and event.user_id is None
    assert all("someone.else" not in str(v) for v in AuditEvent.select().tuples())


def test_the_call_pages_which_show_the_chat_are_audited(app, client):
    doctor = login_as(client, "practitioner")
    appt = make_appointment(practitioner=doctor, starts_in=dt.timedelta(minutes=5))
    for step in (appt.confirm_identity, lambda: appt.give_consent("1", "en"), lambda: appt.record_device_check("{}"),
                 appt.enter_waiting_room, lambda: appt.admit(doctor)):
        step()
    assert client.get(f"/today/{appt.id}/call").status_code == 200
    assert last("visit.call_viewed").user_id == doctor.id
    patient = holding_link(app, appt)
    assert patient.get(f"/v/{appt.ref}/call").status_code == 200
    assert last("visit.call_viewed").actor == "patient"


def test_a_settings_change_names_the_fields_changed(app, client):
    admin = login_as(client, "admin")
    page = client.get("/admin/practice")
    assert page.status_code == 200
    from webapp.models import Practice
    practice = Practice.select().first()
    form = {"name": "Cabinet des Lilas", "address": practice.address or "", "timezone": practice.timezone,
            "default_locale": practice.default_locale, "link_opens_minutes_before": practice.link_opens_minutes_before,
            "link_closes_minutes_after": practice.link_closes_minutes_after,
            "patient_space_days": practice.patient_space_days, "reminder_minutes": practice.reminder_minutes,
            "max_upload_mb": practice.max_upload_mb, "payment_presets": "25, 30",
            "payment_instructions": practice.payment_instructions}
    assert client.post("/admin/practice", data=form).status_code == 302
    event = last("practice.saved")
    assert event.user_id == admin.id and "name" in event.detail.split(",")


def test_the_acts_export_and_document_downloads_are_audited(app, client):
    login_as(client, "secretary")
    assert client.get("/payments/acts.csv").status_code == 200
    assert last("payments.acts_exported") is not None


# Nobody edits the trail.

def test_an_event_cannot_be_changed_or_deleted_through_the_model(app):
    with app.app_context():
        event = AuditEvent.record("system", "test.event")
        event.action = "something.else"
        with pytest.raises(AuditTrailIsAppendOnly):
            event.save()
        with pytest.raises(AuditTrailIsAppendOnly):
            event.delete_instance()
        with pytest.raises(AuditTrailIsAppendOnly):
            AuditEvent.update(action="x").where(AuditEvent.id == event.id)
        assert AuditEvent.get_by_id(event.id).action == "test.event"


def test_purge_may_still_delete_expired_events_by_query(app):
    """The documented exception: retention (``flask purge``) deletes by query."""
    with app.app_context():
        old = AuditEvent.record("system", "test.old")
        AuditEvent.insert(at=utcnow() - dt.timedelta(days=4000), actor="system", action="test.older").execute()
        deleted = AuditEvent.delete().where(AuditEvent.at < utcnow() - dt.timedelta(days=3650)).execute()
        assert deleted == 1 and AuditEvent.get_or_none(AuditEvent.id == old.id) is not None


def test_no_route_changes_or_deletes_audit_events(app):
    """Only GET reaches the trail's page; every other method is refused."""
    client = app.test_client()
    login_as(client, "admin")
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/admin/audit").status_code == 405


# The admin's page.

@pytest.mark.parametrize("role", ["practitioner", "secretary"])
def test_only_admins_read_the_trail(app, client, role):
    login_as(client, role)
    assert client.get("/admin/audit").status_code == 403


def test_the_trail_anonymous_is_sent_to_sign_in(client):
    response = client.get("/admin/audit")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def _events(app):
    doctor = make_user("practitioner", name="Dr Martin")
    secretary = make_user("secretary", name="Alice Secrétaire")
    dupont = make_patient(first_name="Paul", last_name="Dupont")
    durand = make_patient(first_name="Anne", last_name="Durand")
    visit = make_appointment(practitioner=doctor, patient=dupont)
    other = make_appointment(practitioner=doctor, patient=durand)
    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.10"}):
        AuditEvent.record(doctor, "visit.checklist_viewed", visit)
        AuditEvent.record(secretary, "appointment.viewed", other)
        AuditEvent.record("anonymous", "staff.login_failed", detail=f"user:{doctor.id}")
    return doctor, secretary, visit, other


def rows(response):
    return response.get_data(as_text=True).count("<tr data-action=")


def test_the_trail_lists_newest_first_with_who_what_and_from_where(app, client):
    doctor, secretary, visit, other = _events(app)
    login_as(client, "admin")
    response = client.get("/admin/audit")
    assert response.status_code == 200 and "no-store" in response.headers["Cache-Control"]
    text = text_of(response)
    assert "Dr Martin" in text and "Alice Secrétaire" in text and "192.0.2.10" in text
    assert "Someone not signed in" in text and "Dupont Paul" in text
    html = response.get_data(as_text=True)
    assert html.index("staff.login_failed") < html.index("appointment.viewed") < html.index("visit.checklist_viewed")


def test_the_trail_is_searched_by_person_patient_visit_and_dates(app, client):
    doctor, secretary, visit, other = _events(app)
    login_as(client, "admin")
    by_doctor = client.get(f"/admin/audit?person={doctor.id}", headers=HX)
    assert 'id="audit-results"' in by_doctor.get_data(as_text=True) and "<h1>" not in by_doctor.get_data(as_text=True)
    # what the doctor did, and the failed sign-in on their account
    assert rows(by_doctor) == 2 and "appointment.viewed" not in by_doctor.get_data(as_text=True)
    by_patient = client.get("/admin/audit?patient=durand", headers=HX)
    assert rows(by_patient) == 1 and "appointment.viewed" in by_patient.get_data(as_text=True)
    assert rows(client.get(f"/admin/audit?visit={visit.ref}", headers=HX)) == 1
    assert rows(client.get(f"/admin/audit?visit={other.id}", headers=HX)) == 1
    assert rows(client.get("/admin/audit?start=2036-06-10&end=2036-06-10", headers=HX)) >= 3
    assert rows(client.get("/admin/audit?start=2036-06-11", headers=HX)) == 0
    assert rows(client.get("/admin/audit?end=2036-06-09", headers=HX)) == 0


@pytest.mark.parametrize("query, field", [("visit=nope", "No visit has this reference or number."),
                                          ("start=10/06/2036", "Enter a date as YYYY-MM-DD."),
                                          ("start=2036-06-11&end=2036-06-10", "The end date must not be before"),
                                          ("person=999999", "Choose a person from the list.")])
def test_bad_filters_say_what_is_wrong(app, client, query, field):
    login_as(client, "admin")
    response = client.get(f"/admin/audit?{query}")
    assert response.status_code == 422 and field in text_of(response)


def test_the_trail_shows_fifty_events_a_page(app, client):
    login_as(client, "admin")
    AuditEvent.insert_many([{"actor": "system", "action": f"test.n{i:03d}", "at": utcnow() - dt.timedelta(minutes=i)}
                            for i in range(120)]).execute()
    first = client.get("/admin/audit")
    html = first.get_data(as_text=True)
    assert rows(first) == 50 and "test.n000" in html and "test.n050" not in html and "Older" in html
    third = client.get("/admin/audit?page=3")
    # 120 events and the first page load's "audit.viewed" (this load's is written after its search)
    assert rows(third) == 21 and "Older" not in third.get_data(as_text=True) and "Newer" in third.get_data(as_text=True)


@pytest.mark.parametrize("proxies, expected", [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_behind_a_trusted_proxy_the_clients_address_is_recorded(tmp_path, proxies, expected):
    from conftest import make_app, make_practice
    app = make_app(tmp_path, ENV={"DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite3'}", "SECRET_KEY": "x",
                                   "TRUSTED_PROXIES": str(proxies)})
    with app.app_context():
        make_practice()
        user = make_user("practitioner")
        db.close()
    app.test_client().post("/login", data={"email": user.email, "password": PASSWORD},
                           headers={"X-Forwarded-For": "203.0.113.9"})
    with app.app_context():
        assert last("staff.login").address == expected
        db.close()
