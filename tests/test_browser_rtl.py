"""Right-to-left pages on a phone in real Chromium: nothing sticks out sideways.

A Hebrew patient (an empty Hebrew catalogue: English text, mirrored) at 360 px wide: their
way in and their call page are no wider than the screen. Before logical CSS, an offset on
the start side of the page (the skip link's left:-999px) made every such page 1359 px wide.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import write_po

from browser import chromium, live_server
from conftest import make_app, make_appointment, make_patient, make_practice, make_user
from webapp.access import IDENTITY_COOKIE, link_expires_at, patient_link_url
from webapp.models import db
from webapp.tokens import make_identity_cookie

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PHONE = {"width": 360, "height": 740}


def with_hebrew(tmp_path) -> str:
    folder = tmp_path / "translations"
    shutil.copytree(ROOT / "translations", folder, ignore=shutil.ignore_patterns("*.pot"))
    messages = folder / "he" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    with (messages / "messages.po").open("wb") as fh:
        write_po(fh, Catalog(locale="he"))
    with (messages / "messages.mo").open("wb") as fh:
        write_mo(fh, Catalog(locale="he"))
    return str(folder)


def test_hebrew_pages_fit_a_phone(tmp_path):
    # No relay: the call page shows it is unavailable, its layout (video, controls, chat) whole.
    app = make_app(tmp_path, BABEL_TRANSLATION_DIRECTORIES=with_hebrew(tmp_path), RELAY_EMBEDDED=False)
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner", name="Dr Navigateur")
        arriving = make_appointment(doctor, starts_in=dt.timedelta(minutes=5), locale="he",
                                    patient=make_patient(first_name="שרה", last_name="כהן", locale="he"))
        calling = make_appointment(doctor, starts_in=dt.timedelta(minutes=2), locale="he",
                                   patient=make_patient(first_name="Noa", last_name="Levi", locale="he"))
        calling.confirm_identity()
        calling.give_consent("1", "he")
        calling.record_device_check('{"camera": "ok", "microphone": "ok"}')
        calling.enter_waiting_room()
        calling.admit(doctor)
        with app.test_request_context():
            links = {appt.ref: patient_link_url(appt) for appt in (arriving, calling)}
        identity = make_identity_cookie("test-secret", calling.id, calling.link_version, link_expires_at(calling))
        db.close()
    with live_server(app) as url, chromium() as browser:
        context = browser.new_context(locale="he-IL", viewport=PHONE)
        context.add_cookies([{"name": IDENTITY_COOKIE, "value": identity, "domain": "127.0.0.1",
                              "path": f"/v/{calling.ref}/"}])
        page = context.new_page()
        for ref, wanted in ((arriving.ref, "/identity"), (calling.ref, "/call")):
            page.goto(links[ref].replace("https://cabinet.test", url))
            page.wait_for_url(f"**/v/{ref}{wanted}")
            page.wait_for_load_state("load")
            assert page.evaluate("document.documentElement.dir") == "rtl"
            width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (wanted, width)
        # The skip link, focused, shows inside the screen on the start (right) side.
        page.keyboard.press("Tab")
        box = page.locator("a.skip").bounding_box()
        assert box and box["x"] + box["width"] <= PHONE["width"] and box["x"] > PHONE["width"] / 2
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        context.close()
