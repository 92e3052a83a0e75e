"""Sign-in, sessions and roles."""
from __future__ import annotations

import pytest

from conftest import PASSWORD, db_snapshot, login_as, make_user, text_of
from webapp.auth import check_password
from webapp.models import AuditEvent, User


def test_sign_in_and_out(client):
    # A secretary without a second factor: the password alone signs in (practitioners: test_second_factor.py).
    user = make_user("secretary", email="Dr.Martin@cabinet.example.org")
    page = client.get("/login")
    assert page.status_code == 200 and "Sign in" in text_of(page)
    response = client.post("/login", data={"email": "dr.martin@cabinet.example.org", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"].endswith("/agenda/today")
    assert client.get("/agenda/").status_code == 200
    assert AuditEvent.get(AuditEvent.action == "staff.login").user_id == user.id
    client.post("/logout")
    assert client.get("/agenda/").status_code == 302


@pytest.mark.parametrize("email, password, message", [
    ("nobody@cabinet.example.org", PASSWORD, "Wrong e-mail or password."),
    ("known@cabinet.example.org", "wrong password", "Wrong e-mail or password."),
    ("", PASSWORD, "Enter your e-mail address."),
    ("known@cabinet.example.org", "", "Enter your password."),
])
def test_sign_in_failures(client, email, password, message):
    make_user("practitioner", email="known@cabinet.example.org")
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code in (200, 401) and message in text_of(response)
    with client.session_transaction() as session:
        assert "uid" not in session


def test_disabled_account_cannot_sign_in(client):
    make_user("secretary", email="gone@cabinet.example.org", active=False)
    response = client.post("/login", data={"email": "gone@cabinet.example.org", "password": PASSWORD})
    assert response.status_code == 401


def test_disabled_account_loses_its_session(client):
    user = login_as(client, "secretary")
    User.update(active=False).where(User.id == user.id).execute()
    assert client.get("/agenda/").status_code == 302


# What ?next= holds (already percent-encoded, as it comes in the address) → where signing in leads.
NEXT_TARGETS = [
    ("/patients/", "/patients/"),
    ("/agenda/", "/agenda/"),
    ("/agenda/%3Fdate%3D2036-06-10", "/agenda/?date=2036-06-10"),
    ("//evil.example/", "/agenda/today"),
    ("//evil", "/agenda/today"),
    ("/%5Cevil", "/agenda/today"),                  # "/\\evil": a browser reads the backslash as "/"
    ("/%5C%5Cevil", "/agenda/today"),
    ("%5C%5Cevil", "/agenda/today"),
    ("/%09/evil.example", "/agenda/today"),         # a browser drops the tab: "//evil.example"
    ("/%0A/evil.example", "/agenda/today"),
    ("/%0D/evil.example", "/agenda/today"),
    ("/%0d%0aSet-Cookie:x", "/agenda/today"),       # header injection
    ("/x%0d%0aSet-Cookie:%20uid=1", "/agenda/today"),
    ("/%7F/evil.example", "/agenda/today"),
    ("https://evil.example/", "/agenda/today"),
    ("https:/evil.example/", "/agenda/today"),
    ("http:evil.example", "/agenda/today"),
    ("javascript:alert(1)", "/agenda/today"),
    ("%20/x", "/agenda/today"),
    ("evil.example", "/agenda/today"),
    ("", "/agenda/today"),
]


@pytest.mark.parametrize("target, expected", NEXT_TARGETS)
def test_next_stays_on_this_site(client, target, expected):
    user = make_user("secretary", email="n@cabinet.example.org")
    page = client.get(f"/login?next={target}")
    assert page.status_code == 200 and "Sign in" in text_of(page)
    before = db_snapshot()
    response = client.post(f"/login?next={target}", data={"email": "n@cabinet.example.org", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == expected
    assert response.headers.getlist("Set-Cookie") and all(
        cookie.startswith("session=") for cookie in response.headers.getlist("Set-Cookie"))
    # Signing in records the sign-in and nothing else.
    after = db_snapshot()
    assert {k: v for k, v in after.items() if k != "AuditEvent"} == \
        {k: v for k, v in before.items() if k != "AuditEvent"}
    assert [e.action for e in AuditEvent.select().where(AuditEvent.user == user)] == ["staff.login"]


def test_a_nul_byte_in_next_is_refused_before_signing_in(client):
    make_user("practitioner", email="n@cabinet.example.org")
    before = db_snapshot()
    response = client.post("/login?next=/%00/evil.example", data={"email": "n@cabinet.example.org",
                                                                   "password": PASSWORD})
    assert response.status_code == 400 and "Location" not in response.headers
    assert "a character that is not allowed" in text_of(response)
    assert db_snapshot() == before


@pytest.mark.parametrize("target", ["/%0d%0aSet-Cookie:x", "/%09/evil.example", "//evil.example/"])
def test_a_failed_sign_in_with_a_bad_next_changes_nothing(client, target):
    make_user("practitioner", email="n@cabinet.example.org")
    before = db_snapshot()
    response = client.post(f"/login?next={target}", data={"email": "n@cabinet.example.org", "password": "wrong"})
    assert response.status_code == 401 and "Wrong e-mail or password." in text_of(response)
    assert "Location" not in response.headers
    after = db_snapshot()
    events = after.pop("AuditEvent")     # the failed sign-in is audited (tests/test_audit.py); nothing else changed
    assert len(events) == 1 and "staff.login_failed" in events[0]
    before.pop("AuditEvent")
    assert after == before


def test_passwords_are_hashed_with_argon2():
    user = make_user("admin")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


@pytest.mark.parametrize("role, path, status", [
    ("secretary", "/admin/", 403),
    ("practitioner", "/admin/practice", 403),
    ("admin", "/admin/", 200),
    ("secretary", "/patients/", 200),
    ("secretary", "/agenda/", 200),
])
def test_roles(client, role, path, status):
    login_as(client, role)
    assert client.get(path).status_code == status


def test_sign_in_is_rate_limited(tmp_path):
    from conftest import make_app
    app = make_app(tmp_path, RATELIMIT_ENABLED=True)
    client = app.test_client()
    codes = [client.post("/login", data={"email": "x@cabinet.example.org", "password": "nope"}).status_code
             for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429
    assert "Too many attempts" in text_of(client.post("/login", data={}, headers={"Accept-Language": "en"}))


def test_session_cookie_flags(client):
    make_user("practitioner", email="c@cabinet.example.org")
    response = client.post("/login", data={"email": "c@cabinet.example.org", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie   # PUBLIC_URL is https


NEW_PASSWORD = "a longer new passphrase"


def test_a_staff_member_changes_their_own_password(app, client):
    """Knowing the current one; their other browsers are signed out, this one stays."""
    user = login_as(client, "secretary")
    other_browser = app.test_client()
    login_as(other_browser, user)
    page = client.get("/account")
    assert "Change my password" in text_of(page) and "At least 10 characters." in text_of(page)
    response = client.post("/account/password", data={"current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"].endswith("/account?changed=1")
    assert "Your password is changed." in text_of(client.get("/account?changed=1"))
    saved = User.get_by_id(user.id)
    assert check_password(saved, NEW_PASSWORD) and not check_password(saved, PASSWORD)
    assert AuditEvent.get(AuditEvent.action == "staff.password_changed").user_id == user.id
    assert client.get("/agenda/").status_code == 200                  # this browser goes on
    assert other_browser.get("/agenda/").status_code == 302           # the other one signs in again
    client.post("/logout")
    assert client.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 401
    assert client.post("/login", data={"email": user.email, "password": NEW_PASSWORD}).status_code == 302


@pytest.mark.parametrize("form, field, message", [
    ({"current": "not my password", "new": NEW_PASSWORD, "again": NEW_PASSWORD}, "current",
     "This is not your current password."),
    ({"current": "", "new": NEW_PASSWORD, "again": NEW_PASSWORD}, "current", "Enter your current password."),
    ({"current": PASSWORD, "new": "short", "again": "short"}, "new", "At least 10 characters."),
    ({"current": PASSWORD, "new": "", "again": ""}, "new", "Choose a new password."),
    ({"current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD + "!"}, "again", "The two new passwords differ."),
    ({"current": PASSWORD, "new": NEW_PASSWORD}, "again", "Type the new password again."),
])
def test_a_refused_password_change_says_why_and_changes_nothing(app, client, form, field, message):
    user = login_as(client, "practitioner")
    other_browser = app.test_client()
    login_as(other_browser, user)
    before = User.get_by_id(user.id)
    response = client.post("/account/password", data=form)
    assert response.status_code == 422
    assert message in text_of(response) and f'id="{field}-error"' in response.get_data(as_text=True)
    after = User.get_by_id(user.id)
    assert (after.password_hash, after.session_version) == (before.password_hash, before.session_version)
    assert other_browser.get("/agenda/").status_code == 200
    assert not AuditEvent.select().where(AuditEvent.action == "staff.password_changed").exists()
    assert AuditEvent.select().where(AuditEvent.action == "staff.password_change_failed").count() == (
        1 if field == "current" and form["current"] else 0)


def test_a_password_change_in_french(client):
    login_as(client, "secretary", locale="fr")
    response = client.post("/account/password", data={"current": "pas le bon", "new": NEW_PASSWORD,
                                                      "again": NEW_PASSWORD})
    assert response.status_code == 422 and "Ce n’est pas votre mot de passe actuel." in text_of(response)


def test_guessing_the_current_password_is_rate_limited(tmp_path):
    from conftest import make_app
    app = make_app(tmp_path, RATELIMIT_ENABLED=True)
    client = app.test_client()
    login_as(client, "secretary")
    codes = [client.post("/account/password", data={"current": f"guess {n}", "new": NEW_PASSWORD,
                                                     "again": NEW_PASSWORD}).status_code for n in range(6)]
    assert codes == [422] * 5 + [429]
