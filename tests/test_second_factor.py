"""The TOTP second factor: enrolment, codes, recovery codes, reset by an admin, limits, audit."""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import unquote

import pyotp
import pytest

from conftest import PASSWORD, login_as, make_app, make_practice, make_user, text_of
from webapp.models import AuditEvent, RecoveryCode, User

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def password_step(client, email, next_=""):
    return client.post(f"/login{next_}", data={"email": email, "password": PASSWORD})


def enrolled(role="practitioner", **fields):
    user = make_user(role, totp_secret=SECRET, **fields)
    return user


def test_a_practitioner_must_enrol_before_any_staff_page(client):
    user = make_user("practitioner", email="p@cabinet.example.org")
    response = password_step(client, "p@cabinet.example.org", "?next=/patients/")
    assert response.headers["Location"] == "/login/code"
    assert client.get("/agenda/").headers["Location"] == "/login/code"      # half signed in: no staff page
    assert client.get("/login/code").headers["Location"] == "/second-factor"
    page = client.get("/second-factor")
    html = page.get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', html).group(1)
    qr = re.search(r'<img class="qr" src="(data:image/svg\+xml[^"]+)"', html).group(1)
    assert "<svg" in unquote(qr) and "style=" not in unquote(qr)
    assert "Set up your second factor" in text_of(page)
    # A wrong first code changes nothing.
    wrong = client.post("/second-factor", data={"code": "000000"})
    assert wrong.status_code == 401 and "This code is not right" in text_of(wrong)
    assert User.get_by_id(user.id).totp_secret == ""
    done = client.post("/second-factor", data={"code": pyotp.TOTP(secret).now()})
    codes = re.findall(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", done.get_data(as_text=True))
    assert done.status_code == 200 and len(set(codes)) == 10
    assert "they will not be shown again" in text_of(done) and 'href="/patients/"' in done.get_data(as_text=True)
    stored = User.get_by_id(user.id)
    assert stored.totp_secret == secret and stored.totp_enrolled_at is not None
    hashes = [c.code_hash for c in RecoveryCode.select().where(RecoveryCode.user == user)]
    assert len(hashes) == 10 and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(code.replace("-", "") in h for code in codes for h in hashes)
    assert client.get("/patients/").status_code == 200
    assert client.get("/account").status_code == 200 and "10 recovery codes left" in text_of(client.get("/account"))
    actions = [e.action for e in AuditEvent.select().where(AuditEvent.user == user).order_by(AuditEvent.id)]
    assert actions == ["staff.login", "staff.second_factor_failed", "staff.second_factor_enrolled"]


def test_an_enrolled_user_signs_in_with_a_code_that_cannot_be_used_twice(app, clock):
    user = enrolled(email="p@cabinet.example.org")
    client = app.test_client()
    password_step(client, "p@cabinet.example.org")
    code = pyotp.TOTP(SECRET).now()
    response = client.post("/login/code", data={"code": code})
    assert response.status_code == 302 and response.headers["Location"] == "/agenda/today"
    assert client.get("/agenda/").status_code == 200
    # The same code again, from another browser that has the password: refused.
    thief = app.test_client()
    password_step(thief, "p@cabinet.example.org")
    reused = thief.post("/login/code", data={"code": code})
    assert reused.status_code == 401 and "already used" in text_of(reused)
    assert thief.get("/agenda/").status_code == 302
    assert AuditEvent.select().where(AuditEvent.action == "staff.second_factor_failed").count() == 1
    # The next time step's code works.
    clock.shift(dt.timedelta(seconds=30))
    assert thief.post("/login/code", data={"code": pyotp.TOTP(SECRET).now()}).status_code == 302


@pytest.mark.parametrize("offset, accepted", [(-60, False), (-30, True), (0, True), (30, True), (60, False)])
def test_codes_are_accepted_one_step_either_side(client, offset, accepted):
    enrolled(email="p@cabinet.example.org")
    password_step(client, "p@cabinet.example.org")
    totp = pyotp.TOTP(SECRET)
    code = totp.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset))
    # Aligned to the middle of a step so the ±30 s offsets land on neighbouring steps only.
    response = client.post("/login/code", data={"code": code})
    assert (response.status_code == 302) is accepted


def test_a_recovery_code_signs_in_once(client):
    user = enrolled(email="p@cabinet.example.org")
    from webapp.auth import hash_password
    RecoveryCode.create(user=user, code_hash=hash_password("abcde12345"))
    password_step(client, "p@cabinet.example.org")
    assert client.post("/login/code", data={"code": "ABCDE-12345"}).status_code == 302
    assert RecoveryCode.get(RecoveryCode.user == user).used_at is not None
    client.post("/logout")
    password_step(client, "p@cabinet.example.org")
    assert client.post("/login/code", data={"code": "abcde-12345"}).status_code == 401


def test_a_secretary_may_choose_a_second_factor_from_her_account(client):
    user = login_as(client, "secretary")
    page = client.get("/account")
    assert "Signing in asks only for your password." in text_of(page)
    html = client.get("/second-factor").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', html).group(1)
    assert client.post("/second-factor", data={"code": pyotp.TOTP(secret).now()}).status_code == 200
    assert User.get_by_id(user.id).has_second_factor
    client.post("/logout")
    response = password_step(client, user.email)
    assert response.headers["Location"] == "/login/code"


def test_a_secretary_without_a_factor_signs_in_with_her_password(client):
    make_user("secretary", email="s@cabinet.example.org")
    assert password_step(client, "s@cabinet.example.org").headers["Location"] == "/agenda/today"


def test_an_admin_resets_a_lost_factor(app):
    admin = make_user("admin")
    member = enrolled()
    from webapp.auth import hash_password
    RecoveryCode.create(user=member, code_hash=hash_password("abcde12345"))
    admin_client, member_client = app.test_client(), app.test_client()
    login_as(admin_client, admin)
    login_as(member_client, member)
    page = admin_client.get(f"/admin/staff/{member.id}")
    assert "Reset the second factor" in text_of(page)
    response = admin_client.post(f"/admin/staff/{member.id}/second-factor/reset")
    assert response.status_code == 302
    assert "sets up a new one at their next sign-in" in text_of(admin_client.get(response.headers["Location"]))
    stored = User.get_by_id(member.id)
    assert stored.totp_secret == "" and RecoveryCode.select().where(RecoveryCode.user == member).count() == 0
    event = AuditEvent.get(AuditEvent.action == "staff.second_factor_reset")
    assert event.user_id == admin.id and event.detail == f"user:{member.id}"
    assert member_client.get("/agenda/").status_code == 302                 # their sessions ended
    assert password_step(member_client, member.email).headers["Location"] == "/login/code"
    assert member_client.get("/login/code").headers["Location"] == "/second-factor"


def test_an_admin_cannot_reset_their_own_factor_nor_a_secretary(app):
    admin = enrolled("admin")
    client = app.test_client()
    login_as(client, admin)
    assert client.post(f"/admin/staff/{admin.id}/second-factor/reset").status_code == 403
    secretary = login_as(app.test_client(), "secretary")
    other = enrolled()
    with_secretary = app.test_client()
    login_as(with_secretary, secretary)
    assert with_secretary.post(f"/admin/staff/{other.id}/second-factor/reset").status_code == 403
    assert User.get_by_id(other.id).totp_secret == SECRET


def test_second_factor_attempts_are_limited_per_account(tmp_path):
    app = make_app(tmp_path, RATELIMIT_ENABLED=True)
    make_practice()
    enrolled(email="p@cabinet.example.org")
    codes = []
    for n in range(6):      # each try from a new client address: only the account's limit can stop it
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.0.0.{n + 1}"
        password_step(client, "p@cabinet.example.org")
        codes.append(client.post("/login/code", data={"code": "000000"}).status_code)
    assert codes == [401] * 5 + [429]


@pytest.mark.parametrize("flag, role, required", [
    ([], "practitioner", True), ([], "admin", True), ([], "secretary", False),
    (["--no-require-second-factor"], "practitioner", False), (["--require-second-factor"], "secretary", True),
])
def test_create_user_decides_whether_a_factor_is_required(runner, flag, role, required):
    result = runner.invoke(args=["create-user", "--email", "n@cabinet.example.org", "--name", "N", "--role", role,
                                 "--password", "long enough password", *flag])
    assert result.exit_code == 0, result.output
    user = User.by_email("n@cabinet.example.org")
    assert user.needs_second_factor is required
    client = runner.app.test_client()
    location = client.post("/login", data={"email": "n@cabinet.example.org",
                                           "password": "long enough password"}).headers["Location"]
    assert location == ("/login/code" if required else "/agenda/today")
