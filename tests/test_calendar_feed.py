"""A practitioner's calendar feed: made, shown, renewed and turned off from the profile; the feed
itself (iCalendar) shows initials and times unless the practitioner chose names."""
from __future__ import annotations

import datetime as dt
import re

from icalendar import Calendar

from conftest import HX, login_as, make_appointment, make_patient, make_user, text_of
from webapp.models import AuditEvent, User


def feed_path(client) -> str:
    page = client.get("/profile/").get_data(as_text=True)
    found = re.search(r'id="feed-url"[^>]*value="https://cabinet.test(/agenda/feed/[^"]+\.ics)"', page)
    assert found, "no feed address on the profile page"
    return found.group(1)


def events(response) -> list:
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    return list(Calendar.from_ical(response.data).walk("VEVENT"))


def test_the_feed_shows_initials_and_times_only_by_default(client, app):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, patient=make_patient(first_name="Jeanne", last_name="Discrète"),
                            motive="Douleur thoracique", duration_minutes=30)
    make_appointment(practitioner=me, status="cancelled", starts_in=dt.timedelta(days=1))
    make_appointment(practitioner=make_user("practitioner"))                  # a colleague's
    assert "feed-url" not in client.get("/profile/").get_data(as_text=True)  # off until asked for
    client.post("/profile/calendar/renew")
    path = feed_path(client)
    found = events(app.test_client().get(path))                               # no session: the address is the key
    assert len(found) == 1
    event = found[0]
    assert str(event["summary"]) == "J. D. · Video"
    assert event.decoded("dtstart") == appt.starts_at.replace(tzinfo=dt.timezone.utc)
    assert event.decoded("dtend") - event.decoded("dtstart") == dt.timedelta(minutes=30)
    raw = app.test_client().get(path).get_data(as_text=True)
    assert "Discrète" not in raw and "Douleur" not in raw and appt.ref not in raw
    assert AuditEvent.select().where(AuditEvent.action == "calendar_feed.renewed", AuditEvent.user == me).count() == 1
    assert AuditEvent.select().where(AuditEvent.action == "calendar_feed.read").count() == 2


def test_names_and_motives_only_when_the_practitioner_opts_in(client, app):
    me = login_as(client, "practitioner")
    make_appointment(practitioner=me, patient=make_patient(first_name="Jeanne", last_name="Nommée"), motive="Suivi")
    client.post("/profile/calendar/renew")
    response = client.post("/profile/calendar/names", data={"names": "1"}, headers=HX)
    assert response.status_code == 200 and "<header" not in response.get_data(as_text=True)
    assert User.get_by_id(me.id).feed_details
    event = events(app.test_client().get(feed_path(client)))[0]
    assert str(event["summary"]) == "Jeanne Nommée · Video" and str(event["description"]) == "Suivi"
    client.post("/profile/calendar/names", data={})
    assert not User.get_by_id(me.id).feed_details
    assert "Nommée" not in app.test_client().get(feed_path(client)).get_data(as_text=True)
    actions = [e.action for e in AuditEvent.select().where(AuditEvent.user == me).order_by(AuditEvent.id)]
    assert "calendar_feed.names_shown" in actions and "calendar_feed.names_hidden" in actions


def test_a_renewed_or_revoked_address_is_not_found(client, app):
    login_as(client, "practitioner")
    client.post("/profile/calendar/renew")
    old = feed_path(client)
    client.post("/profile/calendar/renew")
    new = feed_path(client)
    assert new != old
    anyone = app.test_client()
    assert anyone.get(old).status_code == 404 and anyone.get(new).status_code == 200
    response = client.post("/profile/calendar/revoke")
    assert response.status_code == 302
    assert "feed-url" not in client.get("/profile/").get_data(as_text=True)
    assert anyone.get(new).status_code == 404
    client.post("/profile/calendar/renew")                    # on again: yet another address
    assert anyone.get(new).status_code == 404 and anyone.get(feed_path(client)).status_code == 200


def test_a_forged_or_deactivated_feed_is_not_found(client, app):
    me = login_as(client, "practitioner")
    client.post("/profile/calendar/renew")
    path = feed_path(client)
    anyone = app.test_client()
    assert anyone.get(path.replace(".ics", "x.ics")).status_code == 404
    assert anyone.get("/agenda/feed/" + "a" * 600 + ".ics").status_code == 404
    User.update(active=False).where(User.id == me.id).execute()
    assert anyone.get(path).status_code == 404


def test_the_profile_explains_the_feed(client):
    login_as(client, "practitioner")
    assert "initials" in text_of(client.get("/profile/"))
