"""Sign-in, sessions and roles."""
from __future__ import annotations

import pytest

from conftest import PASSWORD, login_as, make_user, text_of
from webapp.models import AuditEvent, User


def test_sign_in_and_out(client):
    user = make_user("practitioner", email="Dr.Martin@cabinet.example.org")
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


def test_next_stays_on_this_site(client):
    make_user("practitioner", email="n@cabinet.example.org")
    for target, expected in (("/patients/", "/patients/"), ("//evil.example/", "/agenda/today"),
                             ("https://evil.example/", "/agenda/today")):
        client.post("/logout")
        response = client.post(f"/login?next={target}", data={"email": "n@cabinet.example.org", "password": PASSWORD})
        assert response.headers["Location"] == expected


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
