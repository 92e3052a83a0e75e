"""Who may reach what: every route and websocket of the app × every kind of caller, as one table.

The table is keyed by endpoint name, one line each. A route added to the app without a line here
fails ``test_every_endpoint_has_an_entry``; a line naming a route that is gone fails
``test_every_entry_names_a_real_endpoint``. Each case runs on the same world, put back as built
whenever a request changed it, so the order of cases never matters.

Columns, in order (``CALLERS``): anonymous; the patient of the visits below (holding the links of
the visit in call and of their closed visit); the patient of another visit; a secretary; the
visits' practitioner; another practitioner of the practice; an admin. Answers: a status code,
``login`` (302 to the sign-in page), ``>space``/``>visit``/``>home`` (302 to that page), ``ok``/``no``
(a websocket accepted/refused), or ``-`` (not tried). POSTs carry an empty form: a 422 means the
caller got past the door and only the form was refused.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import time_machine
from simple_websocket import Client, ConnectionClosed
from werkzeug.exceptions import MethodNotAllowed

from browser import live_server
from conftest import (FROZEN_AT, _reset_postgres, db_snapshot, make_app, make_appointment, make_patient, make_practice,
                      make_user, signed_in)
from webapp.access import COOKIE, link_expires_at
from webapp.db import migrate
from webapp.models import Act, ChatLine, Message, Payment, User, VisitAct, db
from webapp.tokens import make_patient_cookie
from webapp.uploads import store_document

CALLERS = ("anon", "patient", "other_patient", "secretary", "doctor", "colleague", "admin")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%test\n"


@dataclass(frozen=True)
class Rule:
    path: str                   # with {names} of the world's ids and refs
    GET: str = ""               # one answer per caller, space-separated, in CALLERS' order
    POST: str = ""
    WS: str = ""


# Shorthands for the commonest rows.
PUBLIC = "200 200 200 200 200 200 200"
STAFF = "login login login 200 200 404 200"          # the agenda: the colleague does not see this practitioner's
ANY_STAFF = "login login login 200 200 200 200"      # pages of the whole practice, or the user's own
ADMIN = "login login login 403 403 403 200"
PRACTITIONERS = "login login login 403 200 200 403"   # a practitioner's own pages (profile, signature)
CLINICAL = "login login login 403 {ok} 404 403"      # the visit's practitioner: 403 for staff who see the visit
PATIENT = "403 {ok} 403 403 403 403 403"             # that visit's cookie only; another visit's is refused
SOCKET_OF_STAFF = "no no no ok ok ok ok"
SOCKET_OF_ITS_PRACTITIONER = "no no no no ok no no"
SOCKET_OF_ITS_PATIENT = "no ok no no no no no"


def practitioners(ok: str) -> str:
    return PRACTITIONERS.replace("200", ok)


def clinical(ok: str) -> str:
    return CLINICAL.format(ok=ok)


def patient(ok: str) -> str:
    return PATIENT.format(ok=ok)


def staff(ok: str) -> str:
    return STAFF.replace("200", ok)


def any_staff(ok: str) -> str:
    return ANY_STAFF.replace("200", ok)


def admin(ok: str) -> str:
    return ADMIN.replace("200", ok)


TO_CALL = ">/v/{call_ref}/call"

# One line per endpoint (the integrator adds new routes here).
TABLE: dict[str, Rule] = {
    "site.home": Rule("/", GET="login login login >/agenda/today >/agenda/today >/agenda/today >/agenda/today"),
    "site.healthz": Rule("/healthz", GET=PUBLIC),
    "site.manifest": Rule("/manifest.webmanifest", GET=PUBLIC),
    "site.patient_manifest": Rule("/patient.webmanifest", GET=PUBLIC),
    "site.offline": Rule("/offline", GET=PUBLIC),
    "site.service_worker": Rule("/sw.js", GET=PUBLIC),
    "static": Rule("/static/css/app.css", GET=PUBLIC),
    "auth.login": Rule("/login", GET=PUBLIC, POST=PUBLIC),
    "auth.logout": Rule("/logout", POST="login login login login login login login"),
    # A fully signed-in session has no code to enter: the code page sends it on; enrolling is the user's own.
    "auth.second_factor": Rule("/login/code", GET="login login login >/agenda/today >/agenda/today >/agenda/today >/agenda/today",
                               POST="login login login >/agenda/today >/agenda/today >/agenda/today >/agenda/today"),
    "auth.enrol": Rule("/second-factor", GET=ANY_STAFF, POST=any_staff("422")),
    "auth.account": Rule("/account", GET=ANY_STAFF),
    "auth.language": Rule("/account/language", POST=any_staff("422")),
    "auth.change_password": Rule("/account/password", POST=any_staff("422")),
    "admin.reset_second_factor": Rule("/admin/staff/{secretary}/second-factor/reset", POST=admin(">/admin/staff/{secretary}")),
    "admin.index": Rule("/admin/", GET=ADMIN),
    "admin.new_staff": Rule("/admin/staff/new", GET=ADMIN, POST=admin("422")),
    "admin.edit_staff": Rule("/admin/staff/{secretary}", GET=ADMIN, POST=admin("422")),
    "admin.practice": Rule("/admin/practice", GET=ADMIN, POST=admin("422")),
    # Only a practitioner has a professional profile: another role's account is not found.
    "admin.staff_profile": Rule("/admin/staff/{doctor}/profile", GET=ADMIN,
                                POST=admin(">/admin/staff/{doctor}/profile")),
    # A practitioner's own profile and signature: their own, whoever else asks.
    "profile.edit": Rule("/profile/", GET=PRACTITIONERS, POST=practitioners(">/profile/")),
    "profile.upload_signature": Rule("/profile/signature", POST=practitioners("422")),
    "profile.delete_signature": Rule("/profile/signature/delete", POST=practitioners(">/profile/")),
    "profile.signature": Rule("/profile/signature", GET=practitioners("404")),      # none uploaded in this world
    "profile.renew_feed": Rule("/profile/calendar/renew", POST=practitioners(">/profile/")),
    "profile.revoke_feed": Rule("/profile/calendar/revoke", POST=practitioners(">/profile/")),
    "profile.feed_names": Rule("/profile/calendar/names", POST=practitioners(">/profile/")),
    # The calendar feed answers its secret address only: a wrong one is not found, whoever asks.
    "agenda.feed": Rule("/agenda/feed/not-a-token.ics", GET="404 404 404 404 404 404 404"),
    "admin.audit": Rule("/admin/audit", GET=ADMIN),
    # Availability: a practitioner's own hours, exceptions and visit types (999: no such row, 404 past the door);
    # an admin's, for any practitioner, with the practice's booking settings and visit types.
    "profile.availability": Rule("/profile/availability", GET=PRACTITIONERS),
    "profile.hours": Rule("/profile/availability/hours", POST=practitioners(">/profile/availability")),
    "profile.add_exception": Rule("/profile/availability/exceptions", POST=practitioners("422")),
    "profile.remove_exception": Rule("/profile/availability/exceptions/999/delete", POST=practitioners("404")),
    "profile.new_visit_type": Rule("/profile/visit-types/new", GET=PRACTITIONERS, POST=practitioners("422")),
    "profile.edit_visit_type": Rule("/profile/visit-types/999", GET=practitioners("404"), POST=practitioners("404")),
    "admin.staff_availability": Rule("/admin/staff/{doctor}/availability", GET=ADMIN),
    "admin.staff_hours": Rule("/admin/staff/{doctor}/availability/hours",
                              POST=admin(">/admin/staff/{doctor}/availability")),
    "admin.staff_add_exception": Rule("/admin/staff/{doctor}/availability/exceptions", POST=admin("422")),
    "admin.staff_remove_exception": Rule("/admin/staff/{doctor}/availability/exceptions/999/delete",
                                         POST=admin("404")),
    "admin.booking": Rule("/admin/booking", GET=ADMIN, POST=admin("422")),
    "admin.new_visit_type": Rule("/admin/visit-types/new", GET=ADMIN, POST=admin("422")),
    "admin.edit_visit_type": Rule("/admin/visit-types/999", GET=admin("404"), POST=admin("404")),
    "agenda.next_free": Rule("/agenda/next-free", GET=ANY_STAFF),
    # Online booking: public pages, closed (503, the same for everyone) while the practice takes no online
    # bookings, as in this world; the language picker works whatever the switch says.
    "booking.start": Rule("/book", GET=" ".join(["503"] * 7)),
    "booking.practitioner": Rule("/book/{doctor}", GET=" ".join(["503"] * 7)),
    "booking.details": Rule("/book/{doctor}/details", GET=" ".join(["503"] * 7), POST=" ".join(["503"] * 7)),
    "booking.code": Rule("/book/code/nothing", GET=" ".join(["503"] * 7), POST=" ".join(["503"] * 7)),
    "booking.language": Rule("/book/language", POST=" ".join([">/book"] * 7)),
    # Staff: the bookings waiting for approval (the world's visits are not requested: 409 past the door).
    "booking.requests": Rule("/booking/requests", GET=ANY_STAFF),
    "booking.approve": Rule("/booking/requests/{other}/approve", POST=staff("409")),
    "booking.decline": Rule("/booking/requests/{other}/decline", POST=staff("409")),
    "booking.checked": Rule("/booking/patients/{patient}/checked", POST=any_staff(">/booking/requests")),
    # The patient's own cancel and move: their cookie only (the visit in call can no longer change).
    "patient.change": Rule("/v/{call_ref}/change", GET=patient("200")),
    "patient.cancel_own": Rule("/v/{call_ref}/cancel", POST=patient("409")),
    "patient.move_own": Rule("/v/{call_ref}/move", POST=patient("400")),
    "agenda.index": Rule("/agenda/", GET=ANY_STAFF),
    "agenda.today": Rule("/agenda/today", GET=any_staff(">/agenda/")),
    "agenda.detail": Rule("/agenda/{call}", GET=STAFF),
    "agenda.edit": Rule("/agenda/{other}/edit", GET=STAFF, POST=staff("422")),
    "agenda.new": Rule("/agenda/new", GET=ANY_STAFF, POST=any_staff("422")),
    "agenda.instant": Rule("/agenda/instant", GET=ANY_STAFF, POST=any_staff("422")),
    "agenda.overlaps": Rule("/agenda/overlaps", GET=ANY_STAFF),
    "agenda.move": Rule("/agenda/{other}/move", POST=staff("422")),
    "agenda.new_patient": Rule("/agenda/patient", POST=any_staff("422")),
    "agenda.cancel": Rule("/agenda/{other}/cancel", POST=staff(">/agenda/{other}")),
    "agenda.renew_link": Rule("/agenda/{other}/link", POST=staff(">/agenda/{other}")),
    "agenda.hand_over": Rule("/agenda/{call}/hand-over", POST="login login login 403 422 404 422"),
    "notify.messages": Rule("/agenda/{other}/messages", GET=STAFF),
    "notify.retry": Rule("/agenda/{other}/messages/{message}/retry", POST=staff("409")),  # not failed: nothing to retry
    "notify.sms_to_copy": Rule("/messages/sms", GET=ANY_STAFF),
    "notify.sms_copied": Rule("/messages/{message}/copied", POST=any_staff(">/messages/sms")),
    "records.index": Rule("/patients/", GET=ANY_STAFF),
    "records.choices": Rule("/patients/choices", GET=ANY_STAFF),
    "records.new": Rule("/patients/new", GET=ANY_STAFF, POST=any_staff("422")),
    "records.record": Rule("/patients/{patient}", GET=ANY_STAFF),
    "records.edit": Rule("/patients/{patient}/edit", GET=ANY_STAFF, POST=any_staff("422")),
    "records.merge": Rule("/patients/{patient}/merge", GET=ANY_STAFF, POST=any_staff("422")),
    # The record lists the visit's documents to whoever reads its clinical content: the same door as the checklist's.
    "records.document": Rule("/patients/{patient}/documents/{closed_doc}", GET=clinical("200")),
    "payments.index": Rule("/payments/", GET=ANY_STAFF),
    "payments.acts_csv": Rule("/payments/acts.csv", GET=ANY_STAFF),
    "payments.mark_paid": Rule("/payments/{payment}/paid", POST=staff(">/payments/")),
    "payments.cancel": Rule("/payments/{payment}/cancel", POST=staff(">/payments/")),
    "today.index": Rule("/today/", GET=ANY_STAFF),
    "today.live": Rule("/today/live", WS=SOCKET_OF_STAFF),
    "today.admit": Rule("/today/{other}/admit", POST="login login login 403 >/today/{other}/call 404 403"),
    "today.note": Rule("/today/{other}/note", POST=staff(">/today/")),
    "today.send_back": Rule("/today/{other}/send-back", POST=staff("422")),
    "visit.staff_call": Rule("/today/{call}/call", GET=clinical("200")),
    "visit.resume_call": Rule("/today/{call}/resume", POST=clinical("409")),    # its call has not ended
    "visit.staff_upload": Rule("/today/{call}/files", POST=clinical("422")),
    "visit.staff_file": Rule("/today/{call}/files/{call_file}", GET=clinical("200")),
    "visit.practitioner_signal": Rule("/today/{call}/signal", WS=SOCKET_OF_ITS_PRACTITIONER),
    "visit.patient_call": Rule("/v/{call_ref}/call", GET=patient("200")),
    "visit.patient_upload": Rule("/v/{call_ref}/files", POST=patient("422")),
    "visit.patient_file": Rule("/v/{call_ref}/files/{call_file}", GET=patient("200")),
    "visit.patient_signal": Rule("/v/{call_ref}/signal", WS=SOCKET_OF_ITS_PATIENT),
    "closing.unclosed": Rule("/visits/open", GET=ANY_STAFF),
    "closing.acts": Rule("/visits/acts", GET=ADMIN, POST=admin("422")),
    "closing.edit_act": Rule("/visits/acts/{act}", GET=ADMIN, POST=admin("422")),
    # The checklist page itself opens for the agenda's staff, without its clinical sections (see below).
    "closing.checklist": Rule("/visits/{call}/close", GET=STAFF),
    "closing.close": Rule("/visits/{call}/close", POST=clinical("409")),   # its call is still going on
    "closing.record_outcome": Rule("/visits/{call}/outcome", POST=clinical("422")),
    "closing.close_no_show": Rule("/visits/{call}/no-show", POST=clinical("422")),   # the patient came
    "closing.save_report": Rule("/visits/{call}/report", POST=clinical(">/visits/{call}/close")),
    "closing.add_incident": Rule("/visits/{call}/incidents", POST=clinical("422")),
    "closing.upload": Rule("/visits/{call}/documents", POST=clinical("422")),
    "closing.write_prescription": Rule("/visits/{call}/prescription", POST=clinical("422")),
    "closing.document": Rule("/visits/{closed}/documents/{closed_doc}", GET=clinical("200")),
    "closing.add_act": Rule("/visits/{call}/acts", POST=clinical("422")),
    "closing.remove_act": Rule("/visits/{call}/acts/{visit_act}/delete", POST=clinical(">/visits/{call}/close")),
    "closing.request_payment": Rule("/visits/{call}/payment", POST=clinical("422")),
    "closing.waive": Rule("/visits/{call}/waivers/documents", POST=clinical("422")),
    "closing.unwaive": Rule("/visits/{call}/waivers/documents/delete", POST=clinical(">/visits/{call}/close")),
    "closing.add_addendum": Rule("/visits/{closed}/addenda", POST=clinical("422")),
    "patient.open_link": Rule("/p/{token}", GET=" ".join([">/v/{other_ref}/"] * 7)),   # the link is the credential
    "patient.lost_link": Rule("/lost-link", GET=PUBLIC, POST="422 422 422 422 422 422 422"),
    # The patient app's start: the visit last opened by this browser's link (the matrix's callers
    # hold cookies made without opening one), else how to open one.
    "patient.app_entry": Rule("/v/", GET=PUBLIC),
    "patient.visit": Rule("/v/{call_ref}/", GET=patient(TO_CALL)),
    "patient.language": Rule("/v/{call_ref}/language", POST=patient(">/v/{call_ref}/")),
    "patient.identity": Rule("/v/{call_ref}/identity", GET=patient(TO_CALL), POST=patient(TO_CALL)),
    "patient.consent": Rule("/v/{call_ref}/consent", GET=patient(TO_CALL), POST=patient(TO_CALL)),
    "patient.check": Rule("/v/{call_ref}/check", GET=patient(TO_CALL), POST=patient(TO_CALL)),
    "patient.locked": Rule("/v/{call_ref}/locked", GET=patient(">/v/{call_ref}/")),
    "patient.ping": Rule("/v/{call_ref}/ping", GET=patient("204")),
    "patient.device_test": Rule("/v/{call_ref}/device-test", GET=patient("200")),   # any time: test the day before
    "patient.waiting": Rule("/v/{call_ref}/waiting", GET=patient(TO_CALL)),
    "patient.live": Rule("/v/{call_ref}/live", WS=SOCKET_OF_ITS_PATIENT),
    "patient.space": Rule("/v/{closed_ref}/space", GET=patient("200")),
    "patient.space_document": Rule("/v/{closed_ref}/space/documents/{closed_doc}", GET=patient("200")),
}


# The world.

def _build(app, refs: dict | None = None) -> dict:
    """The practice's staff, a visit in call, a closed visit of the same patient, another patient's
    visit waiting, with a file, a document, an act, a payment and a message; their ids and refs."""
    with app.app_context():
        doctor, colleague = make_user("practitioner"), make_user("practitioner")
        secretary, admin = make_user("secretary"), make_user("admin")
        patient = make_patient()
        refs = refs or {}       # a rebuild keeps the refs, so paths and cookies stay what the tests wrote
        call = make_appointment(doctor, patient, starts_in=dt.timedelta(minutes=-5), **refs.get("call", {}))
        closed = make_appointment(doctor, patient, starts_in=dt.timedelta(days=-1), **refs.get("closed", {}))
        other = make_appointment(doctor, make_patient(), starts_in=dt.timedelta(minutes=5), **refs.get("other", {}))
        for appt in (call, other):
            appt.confirm_identity()
            appt.give_consent("1", "en")
            appt.record_device_check("{}")
            appt.enter_waiting_room()
        call.admit(doctor)
        closed.admit(doctor)
        closed.end_call(doctor)
        closed.close(doctor)
        with app.test_request_context():
            call_file = store_document(call, PNG, filename="photo.png", content_type="image/png", source="call",
                                       kind="other", author="patient")
            closed_doc = store_document(closed, PDF, filename="ordonnance.pdf", content_type="application/pdf",
                                        source="closing", kind="prescription", author="practitioner", user=doctor)
        ChatLine.create(appointment=call, author="patient", text="Bonjour")
        act = Act.create(practice=call.practice, code="TC", label="Téléconsultation", fee_cents=2500)
        visit_act = VisitAct.create(appointment=call, code="TC", label="Téléconsultation", fee_cents=2500)
        payment = Payment.create(appointment=closed, amount_cents=2500)
        from webapp.notify import queue
        with app.test_request_context():
            messages = queue(other, "invitation")
        message = next(m for m in messages if m.channel == "sms")
        Message.update(status="sent").where(Message.id == message.id).execute()     # handed to staff to copy
        from webapp.tokens import make_patient_token
        token = make_patient_token("test-secret", other.id, other.link_version, link_expires_at(other))
        world = {"doctor": doctor.id, "colleague": colleague.id, "secretary": secretary.id, "admin": admin.id,
                 "patient": patient.id, "call": call.id, "closed": closed.id, "other": other.id,
                 "call_ref": call.ref, "closed_ref": closed.ref, "other_ref": other.ref,
                 "call_file": call_file.id, "closed_doc": closed_doc.id, "act": act.id, "visit_act": visit_act.id,
                 "payment": payment.id, "message": message.id, "token": token,
                 "cookies": {a.ref: make_patient_cookie("test-secret", a.id, a.link_version, link_expires_at(a))
                             for a in (call, closed, other)}}
        db.close()
    return world


class World:
    """The app and its world, put back as built after a request that changed it."""

    def __init__(self, tmp_path) -> None:
        self.app = make_app(tmp_path, RELAY_EMBEDDED=False, RELAY_BACKOFF_SECONDS=(0.05,))
        self.url = self.app.config["ENV"]["DATABASE_URL"] if "ENV" in self.app.config else ""
        self.postgres = bool(os.environ.get("TEST_DATABASE_URL"))
        self.file = tmp_path / "test.sqlite3"
        self.ids = self._fresh()
        self.built = self._snapshot()
        if not self.postgres:
            shutil.copyfile(self.file, tmp_path / "built.sqlite3")

    def _fresh(self, refs: dict | None = None) -> dict:
        with self.app.app_context():
            make_practice()
            db.close()
        return _build(self.app, refs)

    def _snapshot(self) -> dict:
        with self.app.app_context():
            snapshot = db_snapshot()
            db.close()
        return snapshot

    def restore_if_changed(self) -> None:
        if self._snapshot() == self.built:
            return
        if self.postgres:
            _reset_postgres(os.environ["TEST_DATABASE_URL"])
            with self.app.app_context():
                migrate()
                db.close()
            self.ids = self._fresh({kind: {"ref": self.ids[f"{kind}_ref"]} for kind in ("call", "closed", "other")})
            self.built = self._snapshot()
        else:
            for suffix in ("-wal", "-shm"):
                self.file.with_name(self.file.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(self.file.with_name("built.sqlite3"), self.file)

    def client(self, caller: str):
        client = self.app.test_client()
        ids = self.ids
        if caller == "patient":
            for ref in (ids["call_ref"], ids["closed_ref"]):
                client.set_cookie(COOKIE, ids["cookies"][ref], path=f"/v/{ref}/")
        elif caller == "other_patient":
            # Sent everywhere, not only under its own visit's path as a browser would: a forged request.
            client.set_cookie(COOKIE, ids["cookies"][ids["other_ref"]], path="/")
        elif caller != "anon":
            with self.app.app_context():
                state = signed_in(User.get_by_id(ids[caller]))
                db.close()
            with client.session_transaction() as session:
                session.update(state)
        return client


def outcome(response) -> str:
    """A response as the table writes it: the status, or ``login`` / ``>path`` for a redirect."""
    if response.status_code in (301, 302, 303):
        target = urlsplit(response.headers["Location"]).path
        return "login" if target == "/login" else f">{target}"
    return str(response.status_code)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with time_machine.travel(FROZEN_AT, tick=True):
        built = World(tmp_path_factory.mktemp("matrix"))
    yield built
    if not db.is_closed():
        db.close()


def _http_cases():
    return [pytest.param(endpoint, method, id=f"{endpoint} {method}") for endpoint, rule in TABLE.items()
            for method in ("GET", "POST") if getattr(rule, method)]


def _answers(text: str) -> list[str]:
    answers = text.split()
    assert len(answers) == len(CALLERS), text
    return answers


def test_every_endpoint_has_an_entry(world):
    """A new route without a line in TABLE fails here: say who may reach it."""
    missing = sorted({rule.endpoint for rule in world.app.url_map.iter_rules()} - set(TABLE))
    assert missing == [], f"add a line to TABLE for: {missing}"


def test_every_entry_names_a_real_endpoint(world):
    """Each line names a route that exists, its path reaches that route, and it says what it tries."""
    rules = {rule.endpoint: rule for rule in world.app.url_map.iter_rules()}
    assert sorted(set(TABLE) - set(rules)) == []
    adapter = world.app.url_map.bind("cabinet.test")
    for endpoint, entry in TABLE.items():
        path = entry.path.format(**world.ids)
        for method in ("GET", "POST", "WS"):
            if not getattr(entry, method):
                continue
            assert (method == "WS") == bool(getattr(rules[endpoint], "websocket", False)), endpoint
            matched, _ = adapter.match(path, method="GET" if method == "WS" else method,
                                       websocket=method == "WS")
            assert matched == endpoint, (endpoint, method, path)
            _answers(getattr(entry, method))


@pytest.mark.parametrize("endpoint, method", _http_cases())
def test_who_reaches_what(world, endpoint, method):
    entry = TABLE[endpoint]
    expected = [answer.format(**world.ids) for answer in _answers(getattr(entry, method))]
    got = []
    for caller, answer in zip(CALLERS, expected):
        if answer == "-":
            got.append("-")
            continue
        response = world.client(caller).open(entry.path.format(**world.ids), method=method)
        got.append(outcome(response))
        response.close()
        world.restore_if_changed()
    assert dict(zip(CALLERS, got)) == dict(zip(CALLERS, expected))


@pytest.mark.parametrize("endpoint", [e for e, rule in TABLE.items() if not rule.WS])
def test_a_method_the_route_does_not_take_is_405(world, endpoint):
    """Whoever asks (here the visits' practitioner), a method no route at that path takes is 405."""
    path = TABLE[endpoint].path.format(**world.ids)
    adapter = world.app.url_map.bind("cabinet.test")
    client = world.client("doctor")
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        try:
            adapter.match(path, method=method)
            continue
        except MethodNotAllowed:
            pass
        with client.open(path, method=method) as response:
            assert response.status_code == 405, (method, path)
    world.restore_if_changed()


def test_staff_who_see_the_visit_get_its_checklist_without_its_clinical_content(world):
    """The checklist page opens for the agenda's staff, but the call's files stay the practitioner's."""
    path = TABLE["closing.checklist"].path.format(**world.ids)
    doctor = world.client("doctor").get(path).get_data(as_text=True)
    assert "photo.png" in doctor
    for caller in ("secretary", "admin"):
        page = world.client(caller).get(path)
        assert page.status_code == 200
        assert "photo.png" not in page.get_data(as_text=True)
    world.restore_if_changed()


# Websockets, through a live server, with a real client (the test client cannot upgrade).


def _ws_headers(world, caller: str) -> dict:
    """What the site's own page would send: its cookie and its Origin (the tests' PUBLIC_URL)."""
    ids, origin = world.ids, {"Origin": world.app.config["PUBLIC_URL"]}
    if caller == "anon":
        return origin
    if caller == "patient":
        return {"Cookie": f"{COOKIE}={ids['cookies'][ids['call_ref']]}", **origin}
    if caller == "other_patient":
        return {"Cookie": f"{COOKIE}={ids['cookies'][ids['other_ref']]}", **origin}
    with world.app.app_context():
        state = signed_in(User.get_by_id(ids[caller]))
        db.close()
    session = world.app.session_interface.get_signing_serializer(world.app).dumps(state)
    return {"Cookie": f"session={session}", **origin}


def _accepted(ws, patience: float) -> bool:
    """Refused: the server closes the socket without a frame. Accepted: it sends a first frame, or
    (the staff's day, which speaks only when something changes) keeps the socket open ``patience``
    seconds. A refusal is quick, but on a loaded machine not always within a second: a socket
    expected refused gets longer before its silence counts as accepted."""
    try:
        return ws.receive(timeout=patience) is not None or ws.connected
    except ConnectionClosed:
        return False
    finally:
        if ws.connected:
            ws.close()


@pytest.fixture(scope="module")
def served(world):
    with live_server(world.app) as url:
        yield url.replace("http", "ws", 1)


@pytest.mark.parametrize("endpoint", [e for e, rule in TABLE.items() if rule.WS])
def test_who_opens_which_socket(world, served, endpoint):
    expected = _answers(TABLE[endpoint].WS)
    got = []
    for caller, answer in zip(CALLERS, expected):
        if answer == "-":
            got.append("-")
            continue
        ws = Client.connect(served + TABLE[endpoint].path.format(**world.ids), headers=_ws_headers(world, caller))
        got.append("ok" if _accepted(ws, 1 if answer == "ok" else 5) else "no")
    assert dict(zip(CALLERS, got)) == dict(zip(CALLERS, expected))
