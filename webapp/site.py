"""Site-wide pages: home, health, and the progressive web app's shell."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from .assets import static_url_path
from .db import schema_version
from .i18n import available_locales, text_direction
from .models import db

bp = Blueprint("site", __name__)


@bp.route("/")
def home():
    """Staff go to their agenda; everyone else to the sign-in page."""
    return redirect(url_for("agenda.today" if g.user else "auth.login"))


@bp.route("/healthz")
def healthz():
    """Whether the site works, as JSON for monitoring: ``{"ok": true}`` for anyone (503 when the
    database fails). Versions and addresses (schema, relay workers) help an attacker choose an
    exploit, so only a signed-in administrator sees them."""
    try:
        db.execute_sql("SELECT 1")
        database = {"ok": True, "schema": schema_version()}
    except Exception as exc:  # noqa: BLE001 - any failure is what monitoring must see
        current_app.logger.warning("healthz: database check failed: %s", type(exc).__name__)
        database = {"ok": False, "error": type(exc).__name__}
    body = {"ok": database["ok"]}
    if g.get("user") is not None and g.user.role == "admin":
        relay = current_app.extensions["relay"].health()   # reported, never a reason to fail: calls reconnect
        body.update(version=current_app.config["VERSION"], database=database, relay=relay)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if database["ok"] else 503


# The icons every manifest lists: "any" ones with their own rounded corners, and full-bleed
# "maskable" ones whose cross stays inside the safe zone (the central circle of 80 %), which
# Android crops to its own shape. tools/make_icons.py draws them.
ICONS = (("icons/icon-192.png", "192x192", "any"), ("icons/icon-512.png", "512x512", "any"),
         ("icons/maskable-192.png", "192x192", "maskable"), ("icons/maskable-512.png", "512x512", "maskable"))
SCREENSHOTS = (("icons/screenshot-narrow.png", "540x960", "narrow"), ("icons/screenshot-wide.png", "1280x800", "wide"))


def _manifest(app_id: str, start_url: str, scope: str, name: str, description: str):
    body = {
        "id": app_id, "name": name, "short_name": name if len(name) <= 12 else "Cabinet",
        "description": description, "lang": str(get_locale()), "dir": text_direction(),
        "start_url": start_url, "scope": scope, "display": "standalone",
        "background_color": "#ffffff", "theme_color": "#1f5f8b",
        "icons": [{"src": url_for("static", filename=f), "sizes": sizes, "type": "image/png", "purpose": purpose}
                  for f, sizes, purpose in ICONS]
        + [{"src": url_for("static", filename="icons/icon.svg"), "sizes": "any", "type": "image/svg+xml"}],
        "screenshots": [{"src": url_for("static", filename=f), "sizes": sizes, "type": "image/png",
                         "form_factor": factor, "label": _("Cabinet on a phone") if factor == "narrow"
                         else _("Cabinet on a computer")} for f, sizes, factor in SCREENSHOTS],
    }
    response = jsonify(body)
    response.mimetype = "application/manifest+json"
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("Accept-Language")
    return response


@bp.route("/manifest.webmanifest")
def manifest():
    """The staff's app: it opens on the agenda (or the sign-in page)."""
    name = g.practice.name if g.practice and g.practice.named else "Cabinet"
    return _manifest("/", url_for("site.home"), "/", name, _("Teleconsultation with your practice"))


@bp.route("/patient.webmanifest")
def patient_manifest():
    """The patient's app: it opens on their own visit or space (``/v/`` routes by their cookie),
    never on the staff's sign-in page; the link's token is never in it."""
    asked = request.args.get("lang")
    if asked in available_locales():
        g.locale = asked
    name = g.practice.name if g.practice and g.practice.named else "Cabinet"
    return _manifest("/v/", url_for("patient.app_entry"), "/v/", name, _("Your teleconsultation"))


# What the service worker keeps for pages to load without the network: no patient data, only
# the files every page or the call needs (the call page then starts without fetching anything).
# The call's ES modules are all listed: main.js imports the others, and one missing from the
# cache would be fetched from the network before the call can start.
SHELL_STATIC = ("css/app.css", "css/call.css", "js/app.js", "js/call-early.js",
                "js/call/main.js", "js/call/page.js", "js/call/signaling.js", "js/call/media.js",
                "js/call/peer.js", "js/call/controls.js", "js/call/chat.js", "js/call/quality.js",
                "js/call/screen.js", "js/call/devices.js",
                "js/live.js", "js/waiting-call.js", "js/call-swap.js", "js/today-call.js", "js/device-check.js",
                "icons/icon.svg",
                "vendor/htmx-2.0.11/htmx.min.js",
                "vendor/htmx-ext-ws-2.0.4/ws.min.js")


def service_worker_source(static_folder: str, version: str, locales: list[str] | None = None) -> str:
    """sw.js with its shell list and a version that changes whenever a shell file does.

    The shell holds the files under the versioned addresses pages ask for (``?v=``), and the
    offline page once per language."""
    folder = Path(static_folder)
    digest = hashlib.sha256(version.encode())
    for name in SHELL_STATIC:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    locales = locales or ["en"]
    digest.update(",".join(locales).encode())
    files = [f"/offline?lang={code}" for code in locales] + [static_url_path(static_folder, n) for n in SHELL_STATIC]
    return ((folder / "sw.js").read_text(encoding="utf-8")
            .replace("__SHELL_VERSION__", digest.hexdigest()[:16])
            .replace("__SHELL_FILES__", json.dumps(files))
            .replace("__LOCALES__", json.dumps(locales)))


@bp.route("/sw.js")
def service_worker():
    """The service worker, served from the root so its scope is the whole site."""
    app = current_app._get_current_object()
    source = app.extensions.get("service_worker")
    if source is None or app.debug:
        source = app.extensions["service_worker"] = service_worker_source(app.static_folder, app.config["VERSION"],
                                                                          available_locales())
    response = current_app.response_class(source, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.route("/offline")
def offline():
    """What the service worker shows when the network is gone, in the language asked (``?lang=``).

    It is kept in the worker's cache for every visitor of this browser: it has no session, no CSRF
    token and nothing about anyone, only a link that loads the page again."""
    asked = request.args.get("lang")
    if asked in available_locales():
        g.locale = asked
    response = current_app.response_class(render_template("offline.html"))
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("Accept-Language")
    return response
