"""Sessions that end: after inactivity, absolutely, at logout, a password change or a factor reset."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from conftest import FROZEN_AT, PASSWORD, login_as, make_app, make_practice, make_user, text_of
from webapp.models import User


def sign_in(client, email):
    return client.post("/login", data={"email": email, "password": PASSWORD})


def cookie_value(client):
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def test_signing_in_renews_the_cookie_and_logging_out_kills_the_old_one(client):
    make_user("secretary", email="s@cabinet.example.org")
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by someone else"          # a fixated session from before sign-in
    before = cookie_value(client)
    assert sign_in(client, "s@cabinet.example.org").status_code == 302
    after = cookie_value(client)
    assert before and after and before != after
    with client.session_transaction() as session:
        assert "planted" not in session
    assert client.get("/agenda/").status_code == 200
    client.post("/logout")
    # The cookie as it was while signed in, replayed after logout, no longer opens anything.
    client.set_cookie("session", after)
    response = client.get("/agenda/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "You were signed out" in text_of(client.get("/login"))
    assert User.get(User.email == "s@cabinet.example.org").session_version == 2


def test_an_idle_session_ends_with_a_message(client, clock):
    login_as(client, "secretary")
    clock.shift(dt.timedelta(minutes=29))
    assert client.get("/agenda/").status_code == 200       # activity: the idle clock starts again
    clock.shift(dt.timedelta(minutes=29))
    assert client.get("/agenda/").status_code == 200
    clock.shift(dt.timedelta(minutes=31))
    response = client.get("/agenda/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = client.get(response.headers["Location"])
    assert "Your session ended after a period of inactivity" in text_of(page)
    assert "Your session ended" not in text_of(client.get("/login"))        # said once
    with client.session_transaction() as session:
        assert "uid" not in session


def test_a_session_ends_after_its_maximum_length_even_when_active(client, clock):
    login_as(client, "secretary")
    for _ in range(12 * 3):
        clock.shift(dt.timedelta(minutes=20))
        if client.get("/agenda/").status_code != 200:
            break
    else:
        pytest.fail("the session never ended")
    assert 11.5 * 3600 < time.time() - FROZEN_AT.timestamp() <= 12.4 * 3600
    assert "reached its maximum length" in text_of(client.get("/login"))


def test_session_limits_are_settings(tmp_path, clock):
    app = make_app(tmp_path, SESSION_IDLE_MINUTES=5, SESSION_MAX_HOURS=1)
    make_practice()
    client = app.test_client()
    login_as(client, "secretary")
    clock.shift(dt.timedelta(minutes=6))
    assert client.get("/agenda/").status_code == 302
    assert app.config["PERMANENT_SESSION_LIFETIME"] == dt.timedelta(hours=1)


def test_session_settings_come_from_the_environment(tmp_path):
    app = make_app(tmp_path, ENV={"DATABASE_URL": f"sqlite:///{tmp_path / 'e.sqlite3'}", "SECRET_KEY": "k",
                                  "SESSION_IDLE_MINUTES": "10", "SESSION_MAX_HOURS": "8"})
    assert app.config["SESSION_IDLE_MINUTES"] == 10 and app.config["SESSION_MAX_HOURS"] == 8


def test_logout_ends_the_users_other_sessions(app):
    user = make_user("secretary")
    laptop, phone = app.test_client(), app.test_client()
    login_as(laptop, user)
    login_as(phone, user)
    laptop.post("/logout")
    assert phone.get("/agenda/").status_code == 302


def test_a_password_change_ends_that_users_sessions_but_not_the_admins(app):
    admin = make_user("admin")
    member = make_user("secretary")
    admin_client, member_client = app.test_client(), app.test_client()
    login_as(admin_client, admin)
    login_as(member_client, member)
    form = {"name": member.name, "email": member.email, "role": "secretary", "locale": "en",
            "password": "a brand new password", "active": "y"}
    assert admin_client.post(f"/admin/staff/{member.id}", data=form).status_code == 302
    assert member_client.get("/agenda/").status_code == 302
    # The admin changes their own password: their other sessions end, this one goes on.
    other_admin_browser = app.test_client()
    login_as(other_admin_browser, admin)
    own = {"name": admin.name, "email": admin.email, "role": "admin", "locale": "en",
           "password": "another new password", "active": "y"}
    assert admin_client.post(f"/admin/staff/{admin.id}", data=own).status_code == 302
    assert admin_client.get("/admin/").status_code == 200
    assert other_admin_browser.get("/admin/").status_code == 302


def test_a_session_without_its_times_is_refused(client):
    user = make_user("secretary")
    with client.session_transaction() as session:
        session.update(uid=user.id, ver=user.session_version, mfa=True)     # an old-style cookie
    assert client.get("/agenda/").status_code == 302
