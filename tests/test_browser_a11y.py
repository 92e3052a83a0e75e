"""Every main page, staff and patient, in French and in Arabic, checked by axe-core in real Chromium.

On a 360 px phone, a 768 px tablet and a 1366 px laptop, each page: no serious or critical axe
violation, exactly one h1, no table header without words, and nothing wider than the screen.
`make screenshots` also writes a screenshot of each page x language x width to test-artifacts/a11y/
(not kept in git), to be looked at as a patient or a practitioner would.

axe-core comes from the npm registry (the Makefile's AXE_VERSION, fetched by `make test` into
tests/.axe/). The pages' Content-Security-Policy refuses injected scripts, so the contexts bypass it
and axe's source runs through ``page.evaluate``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
import time_machine

from browser import chromium, live_server
from conftest import FROZEN_AT, make_app, make_appointment, make_patient, make_practice, make_user, signed_in
from webapp.access import COOKIE, IDENTITY_COOKIE, link_expires_at, patient_link_url
from webapp.closing.acts import offered, preselected
from webapp.closing.service import close_visit
from webapp.i18n import local_to_utc, utc_to_local
from webapp.models import Act, Appointment, Payment, Report, User, VisitAct, VisitType, Waiver, db, utcnow
from webapp.patient.join import CONSENT_VERSION
from webapp.tokens import make_identity_cookie, make_patient_cookie

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "a11y"
# The screenshots are for people to look at (`A11Y_SCREENSHOTS=1`, or `make screenshots`); the checks
# run without them, and a full-page screenshot of 200 pages is a good part of the module's time.
SCREENSHOTS = os.environ.get("A11Y_SCREENSHOTS") == "1"
VIEWPORTS = {360: 740, 768: 1024, 1366: 768}
LANGUAGES = ("fr", "ar")
SECRET = "test-secret"
STEPS = ("identity", "consent", "check", "waiting", "call", "ended")      # the way in, then the call


def axe_source() -> str:
    version = re.search(r"^AXE_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    path = ROOT / "tests" / ".axe" / f"axe-core-{version}" / "axe.min.js"
    if not path.exists():
        pytest.fail(f"axe-core {version} is missing: run `make {path.relative_to(ROOT)}` (make test does)")
    return path.read_text()


def _seed(app) -> dict:
    """A practice's day: a cancelled, an audio and video visits, one left to close, one closed; and
    a patient at every step of the way in, one of each per language."""
    with app.app_context():
        practice = make_practice(name="Cabinet médical des Tilleuls", default_locale="fr")
        Act.seed(practice)
        for names, minutes, mode in (({"fr": "Consultation de suivi", "en": "Follow-up", "ar": "استشارة متابعة"}, 20, "video"),
                                     ({"fr": "Renouvellement d'ordonnance", "en": "Repeat prescription",
                                       "ar": "تجديد وصفة طبية"}, 10, "audio")):
            VisitType.create(practice=practice, names=json.dumps(names), duration_minutes=minutes, mode=mode,
                             act_code="TCG")
        admin = make_user("admin", name="Camille Admin", locale="fr")
        doctor = make_user("practitioner", name="Dr Claire Martin-Lefèvre", profession="doctor",
                           specialty="Médecine générale", locale="fr", practice_phone="+33478123456")
        tz = practice.timezone
        today = utc_to_local(utcnow(), tz).date()
        patients = [make_patient(first_name=f, last_name=l, locale="fr") for f, l in
                    (("Louise", "Durand"), ("Hugo", "Lefèvre-Desmarais"), ("Inès", "Benali"), ("Mohamed", "Haddad"))]

        def at(day, hour, minute=0):
            return local_to_utc(dt.datetime.combine(day, dt.time(hour, minute)), tz)

        for i, hour in enumerate((11, 14, 16)):
            make_appointment(doctor, patients[i], starts_at=at(today, hour), mode="audio" if i == 1 else "video",
                             motive="Renouvellement d'ordonnance")
        make_appointment(doctor, patients[3], starts_at=at(today, 15, 30)).cancel(admin)
        make_appointment(doctor, patients[0], starts_at=at(today + dt.timedelta(days=1), 9, 30))
        yesterday = today - dt.timedelta(days=1)
        left_open = make_appointment(doctor, patients[1], starts_at=at(yesterday, 10))
        closed = make_appointment(doctor, patients[2], starts_at=at(yesterday, 11))
        for appt in (left_open, closed):
            start = appt.starts_at
            Appointment.update(identity_confirmed_at=start, consent_at=start, consent_version=CONSENT_VERSION,
                               consent_locale="fr", waiting_since=start, admitted_at=start, status="in_call",
                               call_ended_at=start + dt.timedelta(minutes=15)).where(Appointment.id == appt.id).execute()
        closed = Appointment.get_by_id(closed.id)
        Report.create(appointment=closed, findings="Tension 13/8, bien tolérée.", decisions="Contrôle dans 3 mois.")
        Waiver.create(appointment=closed, item="documents", reason="Aucun document à remettre.", user=doctor)
        own, _ = offered(practice, doctor)
        act = next(a for a in own if a.code == (preselected(doctor, own) or own[0].code))
        VisitAct.create(appointment=closed, act=act, code=act.code, label=act.label, fee_cents=act.fee_cents)
        Payment.create(appointment=closed, amount_cents=act.fee_cents, requested_at=closed.ends_at, updated_by=doctor)
        close_visit(closed, doctor)

        # The way in, one patient per step and language; each browser confirmed its patient's identity.
        steps = {}
        for lang in LANGUAGES:
            for order, step in enumerate(STEPS):
                patient = make_patient(first_name="Sarah", last_name=f"Amrani-{step}", locale=lang)
                appt = make_appointment(doctor, patient, starts_in=dt.timedelta(minutes=3), locale=lang,
                                        locale_source="patient")
                if order >= 1:
                    appt.confirm_identity()
                if order >= 2:
                    appt.give_consent(CONSENT_VERSION, lang)
                if order >= 3:
                    appt.record_device_check('{"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "ok"}')
                    appt.enter_waiting_room()
                if order >= 4:
                    appt.admit(doctor)
                if order >= 5:
                    appt.end_call(doctor)
                steps[lang, step] = appt
        Appointment.update(locale="fr").where(Appointment.id == closed.id).execute()
        with app.test_request_context():
            links = {key: patient_link_url(appt) for key, appt in steps.items()}
            links["space"] = patient_link_url(closed)
        ids = {"admin": admin.id, "doctor": doctor.id, "patient": patients[0].id, "open": left_open.id,
               "closed": closed.id, "today": today.isoformat(),
               **{f"call-{lang}": steps[lang, "call"].id for lang in LANGUAGES}}
        db.close()
    return {"ids": ids, "steps": steps, "links": links}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One app, one database, one browser for the module; the clock frozen as in every test."""
    tmp_path = tmp_path_factory.mktemp("a11y")
    with time_machine.travel(FROZEN_AT, tick=True):
        # No relay: the call page says so, and its layout (video, controls, chat) is all there.
        app = make_app(tmp_path, RELAY_EMBEDDED=False)
        seeded = _seed(app)
        with live_server(app) as url, chromium() as browser:
            yield {"app": app, "url": url, "browser": browser, "axe": axe_source(), **seeded}


def staff_pages(ids, lang) -> list[tuple[str, str]]:
    day = ids["today"]
    return [
        ("agenda-day", f"/agenda/?date={day}&practitioner={ids['doctor']}"),
        ("agenda-week", f"/agenda/?view=week&date={day}&practitioner={ids['doctor']}"),
        ("today", "/today/"),
        ("practitioner-call", f"/today/{ids['call-' + lang]}/call"),
        ("new-booking", f"/agenda/new?practitioner={ids['doctor']}&date={day}"),
        ("instant-visit", "/agenda/instant"),
        ("appointment", f"/agenda/{ids['open']}"),
        ("patients", "/patients/"),
        ("patient-record", f"/patients/{ids['patient']}"),
        ("visits-to-close", "/visits/open"),
        ("checklist-open", f"/visits/{ids['open']}/close"),
        ("checklist-closed", f"/visits/{ids['closed']}/close"),
        ("acts", "/visits/acts"),
        ("payments", "/payments/"),
        ("admin", "/admin/"),
        ("admin-practice", "/admin/practice"),
        ("admin-staff", f"/admin/staff/{ids['doctor']}"),
        ("audit", "/admin/audit"),
        ("profile", "/profile/"),
        ("account", "/account"),
    ]


CHECK_PAGE = """() => {
  const text = el => (el.innerText || el.textContent || '').trim() || el.getAttribute('aria-label') || '';
  return {
    width: document.documentElement.scrollWidth, viewport: window.innerWidth,
    h1: document.querySelectorAll('h1').length,
    emptyHeaders: [...document.querySelectorAll('th')].filter(th => !text(th)).length,
    dir: document.documentElement.dir,
  };
}"""

FOCUS_RING = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  return {id: el.id, style: style.outlineStyle, width: parseFloat(style.outlineWidth), color: style.outlineColor};
}"""

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': '
      + (n.failureSummary || '').split('\\n').slice(1, 2).join(' ').trim())}));
}"""


def examine(page, site, lang, width, name, problems, run_axe):
    """Check the page in front of us; record what is wrong; keep its picture."""
    page.wait_for_load_state("load")
    facts = page.evaluate(CHECK_PAGE)
    where = f"{name} [{lang} {width}px]"
    if facts["width"] > facts["viewport"]:
        problems.append(f"{where}: {facts['width']} px wide in a {facts['viewport']} px screen")
    if facts["h1"] != 1:
        problems.append(f"{where}: {facts['h1']} h1")
    if facts["emptyHeaders"]:
        problems.append(f"{where}: {facts['emptyHeaders']} empty table header(s)")
    if facts["dir"] != ("rtl" if lang == "ar" else "ltr"):
        problems.append(f"{where}: dir={facts['dir']}")
    if run_axe:
        page.evaluate(site["axe"])
        for violation in page.evaluate(RUN_AXE):
            problems.append(f"{where}: axe {violation['impact']} {violation['id']}: {violation['nodes']}")
    if SCREENSHOTS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{lang}-{width}.png"), full_page=True)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_is_accessible_and_fits_the_screen(site, lang):
    url, app = site["url"], site["app"]
    with app.app_context():
        User.update(locale=lang).execute()
        Appointment.update(locale=lang).where(Appointment.id == site["ids"]["closed"]).execute()
        session = app.session_interface.get_signing_serializer(app).dumps(signed_in(User.get_by_id(site["ids"]["admin"])))
        doctor_session = app.session_interface.get_signing_serializer(app).dumps(
            signed_in(User.get_by_id(site["ids"]["doctor"])))
        db.close()
    problems = []
    for width, height in VIEWPORTS.items():
        options = {"viewport": {"width": width, "height": height}, "bypass_csp": True,
                   "locale": "ar" if lang == "ar" else "fr-FR", "service_workers": "block"}
        context = site["browser"].new_context(**options)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # The practitioner's own pages in a browser of their own: switching one browser's session
        # cookie between pages raced the previous page's late answers, which set the cookie back.
        doctor_context = site["browser"].new_context(**options)
        doctor_context.add_cookies([{"name": "session", "value": doctor_session, "url": url}])
        doctor_tab = doctor_context.new_page()
        doctor_tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # axe once per page and language, to keep the module within its time: staff pages at the
        # laptop's width (a table's headers show only on wider screens), patient pages at the phone's.
        staff_axe, patient_axe = width == max(VIEWPORTS), width == min(VIEWPORTS)
        # Staff: the admin sees every page but the practitioner's own (today, closing) which the doctor sees.
        context.add_cookies([{"name": "session", "value": session, "url": url}])
        for name, path in staff_pages(site["ids"], lang):
            doctor_page = name in ("today", "practitioner-call", "checklist-open", "checklist-closed", "visits-to-close", "profile")
            tab = doctor_tab if doctor_page else page
            response = tab.goto(url + path)
            assert response.status == 200, (name, response.status)
            examine(tab, site, lang, width, name, problems, staff_axe)
        doctor_context.close()
        context.clear_cookies()
        # Patients: each visit's link, as the patient opens it.
        for step in STEPS:
            appt = site["steps"][lang, step]
            expires = link_expires_at(appt)
            context.add_cookies([
                {"name": COOKIE, "value": make_patient_cookie(SECRET, appt.id, appt.link_version, expires),
                 "domain": "127.0.0.1", "path": f"/v/{appt.ref}/"},
                {"name": IDENTITY_COOKIE, "value": make_identity_cookie(SECRET, appt.id, appt.link_version, expires),
                 "domain": "127.0.0.1", "path": f"/v/{appt.ref}/"}] if step != "identity" else [])
            page.goto(site["links"][lang, step].replace("https://cabinet.test", url))
            page.wait_for_url(re.compile(f"/v/{appt.ref}/"))
            examine(page, site, lang, width, f"patient-{step}", problems, patient_axe)
            if step == "call":
                # On the call's dark control bar the ring turns white.
                page.focus("#btn-mic")
                page.keyboard.press("Tab")
                ring = page.evaluate(FOCUS_RING)
                if not (ring["id"] == "btn-cam" and ring["style"] == "solid" and ring["color"] == "rgb(255, 255, 255)"):
                    problems.append(f"patient-call [{lang} {width}px]: no light focus ring on the dark bar: {ring}")
            if step == "identity" and width == min(VIEWPORTS):
                # A wrong birth date, once (three would lock the link): the error, by its field.
                page.check("input[name=confirm]")
                page.fill("#birth_date", "1999-01-01")
                page.click("button[type=submit]")
                page.wait_for_selector("#birth_date-error")
                examine(page, site, lang, width, "patient-identity-error", problems, True)
        page.goto(site["links"]["space"].replace("https://cabinet.test", url))
        page.wait_for_url(re.compile("/space"))
        examine(page, site, lang, width, "patient-space", problems, patient_axe)
        page.goto(f"{url}/offline?lang={lang}")
        examine(page, site, lang, width, "offline", problems, patient_axe)
        page.goto(f"{url}/login")
        examine(page, site, lang, width, "login", problems, patient_axe)
        # Our own focus ring, for keyboard users: on the first field of the form (a light surface).
        page.focus("#email")
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")
        ring = page.evaluate(FOCUS_RING)
        if not (ring["style"] == "solid" and ring["width"] >= 2 and ring["id"] == "email"):
            problems.append(f"login [{lang} {width}px]: no focus ring of our own: {ring}")
        context.close()
    assert problems == [], "\n".join(problems)
