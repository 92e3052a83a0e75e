"""The installable apps (the patient's and the staff's), the offline page, and bytes on the wire."""
from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import re

import pytest
from PIL import Image

from conftest import holding_link, login_as, make_appointment, make_patient, text_of
from webapp.access import patient_link_url


def manifest_of(client, page_path, **headers):
    """The manifest a page links to, as the browser would fetch it."""
    page = client.get(page_path, headers=headers).get_data(as_text=True)
    href = re.search(r'<link rel="manifest" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    response = client.get(href, headers=headers)
    assert response.status_code == 200 and response.mimetype == "application/manifest+json"
    return href, json.loads(response.get_data())


def png_size(client, src):
    with client.get(src) as response:
        assert response.status_code == 200 and response.mimetype == "image/png"
        image = Image.open(io.BytesIO(response.get_data()))
        assert image.format == "PNG"
        return f"{image.width}x{image.height}", image


def test_staff_pages_install_the_staff_app(client):
    href, body = manifest_of(client, "/login", **{"Accept-Language": "fr"})
    assert href.startswith("/manifest.webmanifest")
    assert (body["id"], body["start_url"], body["scope"], body["lang"]) == ("/", "/", "/", "fr")
    assert body["name"] == "Cabinet des Tilleuls" and body["display"] == "standalone"


def test_patient_pages_install_the_patient_app_without_the_link(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5), patient=make_patient(locale="fr"))
    client = holding_link(app, appt)
    with app.test_request_context():
        token = patient_link_url(appt).rsplit("/", 1)[1]
    href, body = manifest_of(client, f"/v/{appt.ref}/identity")
    assert href.startswith("/patient.webmanifest")
    assert (body["id"], body["start_url"], body["scope"], body["lang"]) == ("/v/", "/v/", "/v/", "fr")
    assert body["description"] == "Votre téléconsultation"
    assert token not in json.dumps(body) and appt.ref not in json.dumps(body)


def test_the_patient_app_opens_on_the_visit_this_browser_last_opened(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    client = holding_link(app, appt)
    opened = client.get("/v/")
    assert opened.status_code == 302 and opened.headers["Location"] == f"/v/{appt.ref}/"
    assert client.get("/v/", follow_redirects=True).request.path == f"/v/{appt.ref}/identity"


@pytest.mark.parametrize("cookie", [None, "../../admin", "x" * 40])
def test_the_patient_app_without_a_visit_explains_how_to_open_one(app, cookie):
    client = app.test_client()
    if cookie:
        client.set_cookie("cabinet_last_visit", cookie, path="/v/")
    response = client.get("/v/", headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert "Please open the link you received" in text_of(response) and "Sign in" not in text_of(response)


def test_the_patient_app_with_an_expired_cookie_asks_for_the_link(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    client = app.test_client()
    client.set_cookie("cabinet_last_visit", appt.ref, path="/v/")    # the visit cookie itself is gone
    response = client.get("/v/", follow_redirects=True)
    assert response.status_code == 403 and "Please open the link you received" in text_of(response)


def test_icons_are_real_pngs_of_their_sizes_with_maskable_ones(client):
    _, body = manifest_of(client, "/login")
    pngs = [i for i in body["icons"] if i["type"] == "image/png"]
    assert {(i["sizes"], i["purpose"]) for i in pngs} >= {("192x192", "any"), ("512x512", "any"),
                                                        ("192x192", "maskable"), ("512x512", "maskable")}
    for icon in pngs:
        size, image = png_size(client, icon["src"])
        assert size == icon["sizes"]
        if icon["purpose"] == "maskable":
            # Full bleed: Android crops the corners, so they are painted, not transparent.
            assert image.convert("RGBA").getpixel((0, 0))[3] == 255
    for shot in body["screenshots"]:
        assert png_size(client, shot["src"])[0] == shot["sizes"] and shot["form_factor"] in ("narrow", "wide")
    assert {s["form_factor"] for s in body["screenshots"]} == {"narrow", "wide"}


def test_ios_gets_its_tags_and_an_opaque_180_px_icon(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<meta name="apple-mobile-web-app-capable" content="yes">' in page
    assert '<meta name="apple-mobile-web-app-title" content="Cabinet des Tilleuls">' in page
    icon = re.search(r'<link rel="apple-touch-icon" sizes="180x180" href="([^"]+)"', page).group(1)
    size, image = png_size(client, icon.replace("&amp;", "&"))
    assert size == "180x180" and image.mode == "RGB"


@pytest.mark.parametrize("lang, title, retry", [("en", "You are offline", "Try again"),
                                                ("fr", "Vous êtes hors ligne", "Réessayer")])
def test_offline_page_follows_the_language_and_keeps_nothing_of_the_session(app, lang, title, retry):
    # The service worker fetches it without cookies (sw.js): it is the same for every visitor.
    response = app.test_client().get(f"/offline?lang={lang}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and f'<html lang="{lang}"' in html
    assert title in text_of(response)
    assert re.search(r'<a class="button primary" href="" data-retry>\s*' + retry, html)
    assert "csrf" not in html.lower()
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-cache"
    signed_in = app.test_client()
    login_as(signed_in, "practitioner")       # even fetched with a session, it holds nothing of it
    assert signed_in.get(f"/offline?lang={lang}").get_data(as_text=True) == html


def test_the_service_worker_keeps_the_offline_page_in_every_language(client):
    source = client.get("/sw.js").get_data(as_text=True)
    shell = json.loads(re.search(r"var SHELL = (\[.*\]);", source).group(1))
    assert {"/offline?lang=en", "/offline?lang=fr"} <= set(shell)
    assert '"/static/css/app.css?v=' in source     # the addresses pages ask for, so the cache answers them


def test_pages_say_their_language_for_the_service_worker(client):
    assert client.get("/login", headers={"Accept-Language": "fr"}).headers["Content-Language"] == "fr"


def test_responses_are_gzipped_when_the_browser_accepts_it(client):
    plain = client.get("/login")
    assert "Content-Encoding" not in plain.headers and "Accept-Encoding" in plain.headers["Vary"]
    packed = client.get("/login", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert int(packed.headers["Content-Length"]) == len(packed.get_data()) < len(plain.get_data()) / 2
    refused = client.get("/login", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers


def test_static_text_is_gzipped_and_images_are_not(client):
    css = client.get("/static/css/app.css", headers={"Accept-Encoding": "gzip"})
    assert css.headers["Content-Encoding"] == "gzip" and b"--brand" in gzip.decompress(css.get_data())
    assert css.headers["ETag"].startswith('W/"') and "Accept-Ranges" not in css.headers
    with client.get("/static/css/app.css", headers={"Accept-Encoding": "gzip", "If-None-Match": css.headers["ETag"]}) as again:
        assert again.status_code == 304
    with client.get("/static/icons/icon-192.png", headers={"Accept-Encoding": "gzip"}) as png:
        assert png.status_code == 200 and "Content-Encoding" not in png.headers


def test_a_websocket_upgrade_is_never_gzipped(client):
    response = client.get("/login", headers={"Accept-Encoding": "gzip", "Upgrade": "websocket",
                                             "Connection": "Upgrade"})
    assert "Content-Encoding" not in response.headers


def test_versioned_static_files_are_kept_a_year_and_others_revalidated(client):
    page = client.get("/login").get_data(as_text=True)
    css = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]{12})"', page).group(1)
    with client.get(css) as kept:
        assert kept.status_code == 200 and kept.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for address in ("/static/css/app.css", "/static/css/app.css?v=000000000000"):    # none, or an old release's
        with client.get(address) as revalidated:
            assert revalidated.status_code == 200 and revalidated.headers["Cache-Control"] == "no-cache"


def test_the_link_reaches_the_identity_page_in_one_redirect(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    with app.test_request_context():
        link = patient_link_url(appt).replace("https://cabinet.test", "")
    response = app.test_client().get(link, follow_redirects=True)
    assert len(response.history) == 1 and response.request.path == f"/v/{appt.ref}/identity"
    assert response.status_code == 200 and "Is this you?" in text_of(response)


def test_a_link_opened_again_after_identity_goes_on_to_the_next_step(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5), patient=None)
    client = holding_link(app, appt)
    confirmed = client.post(f"/v/{appt.ref}/identity", data={"confirm": "y"})
    assert confirmed.status_code == 302
    with app.test_request_context():
        link = patient_link_url(appt).replace("https://cabinet.test", "")
    again = client.get(link, follow_redirects=True)
    assert again.request.path == f"/v/{appt.ref}/consent"
