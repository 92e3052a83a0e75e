"""Headers and sockets: websockets only from the site's own pages, clinical answers never cached,
and /healthz telling the public only whether the site works."""
from __future__ import annotations

import datetime as dt

import pytest
from simple_websocket import Client, ConnectionClosed

from browser import live_server
from conftest import holding_link, login_as, make_appointment
from webapp.access import COOKIE
from webapp.models import db


# Websockets: the Origin of the handshake.

@pytest.fixture
def served(served_visit):
    return served_visit


def frames_until_closed(ws) -> list[str] | None:
    """What the server sent before closing; None while the socket stays open."""
    seen = []
    try:
        while True:
            raw = ws.receive(timeout=3)
            if raw is None:
                return None if ws.connected else seen
            seen.append(raw)
    except ConnectionClosed:
        return seen


def refused(ws) -> bool:
    """Closed by the server with 1008 before any frame. Under werkzeug's server a stray status line
    may follow the close frame in the same read, and the client then loses the code (1005)."""
    frames = frames_until_closed(ws)
    ws.thread.join(5)      # the client's reader thread ends before the test does (no stray warning)
    return frames == [] and ws.close_reason in (1008, 1005)


def waiting_room(s, origin):
    headers = {"Cookie": f"{COOKIE}={s['cookie']}"}
    if origin is not None:
        headers["Origin"] = origin
    return Client.connect(f"{s['ws']}/v/{s['appt'].ref}/live", headers=headers)


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1.evil.example", "null", None])
def test_a_socket_from_another_site_is_closed_before_anything_is_sent(served, origin):
    ws = waiting_room(served, origin)
    assert refused(ws)


@pytest.mark.parametrize("path", ["/today/live", "/today/1/signal"])
def test_staff_sockets_check_the_origin_too(served, path):
    ws = Client.connect(f"{served['ws']}{path}",
                        headers={"Cookie": f"session={served['session']}", "Origin": "https://evil.example"})
    assert refused(ws)


def test_the_patient_signal_socket_checks_the_origin(served):
    ws = Client.connect(f"{served['ws']}/v/{served['appt'].ref}/signal",
                        headers={"Cookie": f"{COOKIE}={served['cookie']}", "Origin": "https://evil.example"})
    assert refused(ws)


@pytest.mark.parametrize("origin", ["own host", "https://cabinet.test"])
def test_the_sites_own_pages_and_its_public_address_open_sockets(served, origin):
    # simple_websocket's client sends the Host header without the port; a browser sends both.
    ws = waiting_room(served, "http://127.0.0.1" if origin == "own host" else origin)
    try:
        first = ws.receive(timeout=3)
        assert first is not None and 'id="waiting-status"' in first
    finally:
        ws.close()


# Cache-Control: no-store on clinical answers.

CLINICAL = ["closing.checklist", "closing.document", "closing.save_report", "closing.close", "closing.unclosed",
            "visit.patient_file", "visit.staff_file", "visit.patient_call", "visit.staff_call",
            "patient.space", "patient.space_document", "patient.waiting",
            "records.index", "records.edit", "records.new", "records.choices", "agenda.detail",
            "records.record", "records.document", "records.merge"]


@pytest.mark.parametrize("endpoint", CLINICAL)
def test_clinical_views_are_never_cached(app, endpoint):
    assert getattr(app.view_functions[endpoint], "no_store", False), endpoint


def test_the_checklist_page_and_its_fragments_say_no_store(app, client):
    doctor = login_as(client, "practitioner")
    appt = make_appointment(practitioner=doctor)
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(f"/visits/{appt.id}/close", headers=headers)
        assert response.status_code == 200
        assert "no-store" in response.headers["Cache-Control"]
    records = client.get(f"/patients/{appt.patient_id}")
    assert records.status_code == 200 and "no-store" in records.headers["Cache-Control"]


def test_the_patient_space_and_waiting_room_say_no_store(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    client = holding_link(app, appt)
    response = client.get(f"/v/{appt.ref}/waiting")
    assert "no-store" in response.headers["Cache-Control"]


def test_other_pages_may_be_cached(client):
    assert "no-store" not in client.get("/login").headers.get("Cache-Control", "")


# /healthz

def test_healthz_tells_the_public_only_whether_it_works(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"ok": True}
    assert "sqlite" not in response.get_data(as_text=True) and "ws://" not in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["practitioner", "secretary"])
def test_healthz_details_are_not_for_other_staff(client, role):
    login_as(client, role)
    assert client.get("/healthz").get_json() == {"ok": True}


def test_healthz_shows_versions_and_relay_to_an_admin(app, client):
    login_as(client, "admin")
    body = client.get("/healthz").get_json()
    assert body["ok"] is True and body["version"] == app.config["VERSION"]
    assert body["database"]["schema"] >= 1 and body["relay"]["mode"] == "embedded"


# The patient link's token never reaches an access log.

def test_the_development_servers_log_never_shows_a_link_token(app, caplog):
    import urllib.error
    import urllib.request
    from webapp.access import patient_link_url
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    with app.test_request_context():
        path = patient_link_url(appt).replace("https://cabinet.test", "")
    token = path.rsplit("/", 1)[1]
    assert len(token) > 20
    opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                              {"redirect_request": lambda *a, **k: None}))
    db.close()
    with caplog.at_level("INFO", logger="werkzeug"), live_server(app) as url:
        try:
            opener.open(f"{url}{path}?utm=1")
        except urllib.error.HTTPError as answer:
            assert answer.code == 302      # the link was exchanged for the cookie
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("GET /p/…?utm=1 HTTP/1.1" in line and " 302 " in line for line in lines), lines
    assert not any(token in line for line in lines) and token not in caplog.text


@pytest.mark.parametrize("line, expected", [
    ('1.2.3.4 - - "GET /p/abc.DEF-_9 HTTP/1.1" 302 0 "https://visio.example.fr/p/abc.DEF" "UA"',
     '1.2.3.4 - - "GET /p/… HTTP/1.1" 302 0 "https://visio.example.fr/p/…" "UA"'),
    ('"GET /static/p/app.css HTTP/1.1" 200', '"GET /static/p/app.css HTTP/1.1" 200'),
    ("/p/tok", "/p/…"),
    ('"GET /agenda/feed/v1.abc-_9.ics HTTP/1.1" 200', '"GET /agenda/feed/… HTTP/1.1" 200'),
    ('"POST /book/code/abc.DEF?x=1 HTTP/1.1" 303', '"POST /book/code/…?x=1 HTTP/1.1" 303'),
    ('"GET /agenda/feeds HTTP/1.1" 200', '"GET /agenda/feeds HTTP/1.1" 200'),
])
def test_the_filter_rewrites_only_link_paths(line, expected):
    import logging
    from webapp.app import LinkTokenFilter
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", ({"r": line},), None)
    assert LinkTokenFilter().filter(record) and record.getMessage() == expected


def test_the_app_filters_gunicorns_access_log_too(app):
    import logging
    from webapp.app import LinkTokenFilter
    assert any(isinstance(f, LinkTokenFilter) for f in logging.getLogger("gunicorn.access").filters)
    assert sum(isinstance(f, LinkTokenFilter) for f in logging.getLogger("werkzeug").filters) == 1
