"""The factory, configuration, health, security headers and the PWA shell."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import make_app, text_of
from webapp.config import ConfigError, from_environment

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_no_environment(tmp_path):
    settings = from_environment(tmp_path, {})
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'cabinet.sqlite3'}"
    assert settings["DEFAULT_LOCALE"] == "fr"
    assert (settings["LINK_OPENS_MINUTES_BEFORE"], settings["LINK_CLOSES_MINUTES_AFTER"]) == (15, 60)
    assert settings["PATIENT_SPACE_DAYS"] == 15
    assert (settings["RELAY_HOST_ADDRESSES"], settings["ICE_SERVERS"]) == (["127.0.0.1"], [])
    # The generated secret is kept, so sessions survive a restart.
    assert from_environment(tmp_path, {})["SECRET_KEY"] == settings["SECRET_KEY"]
    assert len(settings["SECRET_KEY"]) >= 40


@pytest.mark.parametrize("env, message", [
    ({"SMTP_PORT": "smtp"}, "SMTP_PORT must be a whole number"),
    ({"SMTP_PORT": "70000"}, "SMTP_PORT must be between 1 and 65535"),
    ({"SMTP_TLS": "maybe"}, "SMTP_TLS must be true or false"),
    ({"PUBLIC_URL": "cabinet.example"}, "PUBLIC_URL must start with http"),
    ({"PATIENT_SPACE_DAYS": "0"}, "PATIENT_SPACE_DAYS must be between 1 and 365"),
    ({"RELAY_HOST_ADDRESSES": "203.0.113.7,eth0"}, "RELAY_HOST_ADDRESSES must list IP addresses, not 'eth0'"),
    ({"ICE_SERVERS": "[not json"}, "ICE_SERVERS must be a JSON list of objects with urls"),
    ({"ICE_SERVERS": '[{"username": "u"}]'}, "ICE_SERVERS must be a JSON list of objects with urls"),
])
def test_bad_configuration_is_named(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        from_environment(tmp_path, env)


def test_relay_network_settings_are_read_like_the_worker_reads_them(tmp_path):
    settings = from_environment(tmp_path, {
        "RELAY_HOST_ADDRESSES": " 203.0.113.7 , 2001:db8::1 ,",
        "ICE_SERVERS": "stun:stun.example.org:3478, turn:turn.example.org:3478"})
    assert settings["RELAY_HOST_ADDRESSES"] == ["203.0.113.7", "2001:db8::1"]
    assert settings["ICE_SERVERS"] == [{"urls": "stun:stun.example.org:3478"}, {"urls": "turn:turn.example.org:3478"}]
    # Set but empty: the web app falls back to its default.
    assert from_environment(tmp_path, {"RELAY_HOST_ADDRESSES": " , "})["RELAY_HOST_ADDRESSES"] == ["127.0.0.1"]


def test_sqlite_is_durable(app):
    from webapp.models import db
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("SQLite settings")
    pragma = lambda name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert (pragma("journal_mode"), pragma("synchronous"), pragma("foreign_keys")) == ("wal", 2, 1)


def test_migrations_are_recorded_and_idempotent(app):
    from webapp.db import MIGRATIONS, migrate, schema_version
    assert schema_version() == MIGRATIONS[-1][0]
    assert migrate() == []


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"ok": True}       # details only for admins: tests/test_security.py


def test_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_no_inline_scripts_and_no_outside_requests():
    """Every template loads scripts from our static folder only, and nothing from another host."""
    for path in (ROOT / "templates").rglob("*.html"):
        html = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"inline script in {path}"
        assert not re.search(r"(src|href)=[\"']https?://", html), f"outside request in {path}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline handler in {path}"


def test_csrf_is_enforced(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    response = client.post("/login", data={"email": "a@b.c", "password": "x"}, headers={"Accept-Language": "en"})
    assert response.status_code == 400 and "This form has expired" in text_of(response)
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    ok = client.post("/login", data={"email": "a@b.c", "password": "x", "csrf_token": token})
    assert ok.status_code == 401
    via_header = client.post("/logout", headers={"X-CSRFToken": header_token, "HX-Request": "true"})
    assert via_header.status_code == 302


def test_manifest_and_service_worker(client):
    manifest = client.get("/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json"
    body = json.loads(manifest.get_data())
    assert body["display"] == "standalone" and {i["sizes"] for i in body["icons"]} >= {"192x192", "512x512"}
    for icon in body["icons"]:
        with client.get(icon["src"]) as response:
            assert response.status_code == 200
    with client.get("/sw.js") as sw:
        assert sw.status_code == 200 and "javascript" in sw.mimetype
        assert sw.headers["Service-Worker-Allowed"] == "/"
        source = sw.get_data(as_text=True)
    assert "__" not in source
    shell = json.loads(re.search(r"var SHELL = (\[.*\]);", source).group(1))
    assert "/static/js/call/main.js" in {p.split("?")[0] for p in shell}
    assert {"/offline?lang=en", "/offline?lang=fr"} <= set(shell)
    for path in shell:     # cache.addAll fails as a whole if one file is missing
        with client.get(path) as response:
            assert response.status_code == 200, path


def test_every_call_module_is_in_the_shell():
    from webapp.site import SHELL_STATIC
    modules = {f"js/call/{p.name}" for p in (ROOT / "static" / "js" / "call").glob("*.js")}
    assert "js/call/main.js" in modules and modules <= set(SHELL_STATIC)


def test_service_worker_version_follows_the_shell_files(tmp_path):
    from webapp.site import SHELL_STATIC, service_worker_source
    for name in SHELL_STATIC + ("sw.js",):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((ROOT / "static" / name).read_bytes())
    version = re.compile(r'"cabinet-shell-([0-9a-f]+)"')
    before = version.search(service_worker_source(str(tmp_path), "1.0")).group(1)
    assert version.search(service_worker_source(str(tmp_path), "1.0")).group(1) == before
    (tmp_path / "js" / "call" / "main.js").write_text("// a new release", encoding="utf-8")
    assert version.search(service_worker_source(str(tmp_path), "1.0")).group(1) != before


def test_vendored_htmx_keeps_its_licence():
    vendor = ROOT / "static" / "vendor"
    for folder in ("htmx-2.0.11", "htmx-ext-ws-2.0.4"):
        assert (vendor / folder / "LICENSE").exists()


def test_home_redirects(client):
    assert client.get("/").headers["Location"].endswith("/login")


def test_unknown_page_is_translated(client):
    response = client.get("/nowhere", headers={"Accept-Language": "fr"})
    assert response.status_code == 404 and "Cette page n’existe pas" in text_of(response)


def test_an_old_database_is_migrated_without_losing_rows(tmp_path):
    """A database made by schema 1 gains the later columns and keeps its rows."""
    import sqlite3
    from webapp.db import MIGRATIONS
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript("""
            CREATE TABLE schemaversion (version INTEGER PRIMARY KEY, applied_at DATETIME);
            INSERT INTO schemaversion VALUES (1, '2026-01-01');
            CREATE TABLE practice (id INTEGER PRIMARY KEY, name VARCHAR(200), address TEXT, timezone VARCHAR(64),
                default_locale VARCHAR(16), link_opens_minutes_before INTEGER, link_closes_minutes_after INTEGER,
                patient_space_days INTEGER, reminder_minutes VARCHAR(100), created_at DATETIME);
            INSERT INTO practice VALUES (1, 'Ancien', '', 'Europe/Paris', 'fr', 15, 60, 15, '1440,15', '2026-01-01');
            CREATE TABLE appointment (id INTEGER PRIMARY KEY, ref VARCHAR(32), practice_id INTEGER,
                practitioner_id INTEGER, patient_id INTEGER, contact_email VARCHAR(254), contact_phone VARCHAR(20),
                starts_at DATETIME, duration_minutes INTEGER, motive TEXT, mode VARCHAR(10), kind VARCHAR(10),
                status VARCHAR(12), link_version INTEGER, locale VARCHAR(16), created_at DATETIME, updated_at DATETIME);
            INSERT INTO appointment VALUES (1, 'r1', 1, 1, NULL, 'a@example.org', '', '2026-01-02 10:00:00', 15, '',
                'video', 'scheduled', 'scheduled', 1, '', '2026-01-01', '2026-01-01');
        """)
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the old schema here is SQLite's")
    app = make_app(tmp_path, ENV={"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "x"})
    with app.app_context():
        from webapp.models import Appointment, db
        from webapp.db import schema_version
        assert schema_version() == MIGRATIONS[-1][0]
        appt = Appointment.get_by_id(1)
        assert appt.contact_email == "a@example.org" and appt.notify_email is True and appt.identity_failures == 0
        assert appt.locale_source == "" and appt.locale_origin == "default"      # migration 13
        from webapp.models import Practice
        assert Practice.get_by_id(1).share_records is False      # migration 7: records are not shared
        assert (appt.outcome, appt.outcome_reason, appt.call_end_source) == ("", "", "")   # 10: none recorded
        practice = Practice.get_by_id(1)        # 14: online booking off, 24 h notice, no visit type
        assert (practice.online_booking, practice.patient_change_notice_hours, appt.visit_type_id) == (False, 24, None)
        db.close()
