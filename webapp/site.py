"""Site-wide pages: home, health, and the progressive web app's shell."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _

from .db import schema_version
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


@bp.route("/manifest.webmanifest")
def manifest():
    """The web app manifest, so phones and tablets can install Cabinet."""
    name = g.practice.name if g.practice else "Cabinet"
    body = {
        "name": name, "short_name": "Cabinet",
        "description": _("Teleconsultation with your practice"),
        "start_url": url_for("site.home"), "scope": "/", "display": "standalone",
        "background_color": "#ffffff", "theme_color": "#1f5f8b",
        "icons": [
            {"src": url_for("static", filename="icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": url_for("static", filename="icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {"src": url_for("static", filename="icons/icon.svg"), "sizes": "any", "type": "image/svg+xml"},
        ],
    }
    response = jsonify(body)
    response.mimetype = "application/manifest+json"
    return response


# What the service worker keeps for pages to load without the network: no patient data, only
# the files every page or the call needs (the call page then starts without fetching anything).
# The call's ES modules are all listed: main.js imports the others, and one missing from the
# cache would be fetched from the network before the call can start.
SHELL_STATIC = ("css/app.css", "css/call.css", "js/app.js", "js/call-early.js",
                "js/call/main.js", "js/call/page.js", "js/call/signaling.js", "js/call/media.js",
                "js/call/peer.js", "js/call/controls.js", "js/call/chat.js", "js/call/quality.js",
                "js/call/screen.js", "js/call/devices.js",
                "js/live.js", "js/device-check.js", "icons/icon.svg", "vendor/htmx-2.0.11/htmx.min.js",
                "vendor/htmx-ext-ws-2.0.4/ws.min.js")


def service_worker_source(static_folder: str, version: str) -> str:
    """sw.js with its shell list and a version that changes whenever a shell file does."""
    folder = Path(static_folder)
    digest = hashlib.sha256(version.encode())
    for name in SHELL_STATIC:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    files = ["/offline"] + [f"/static/{name}" for name in SHELL_STATIC]
    return ((folder / "sw.js").read_text(encoding="utf-8")
            .replace("__SHELL_VERSION__", digest.hexdigest()[:16])
            .replace("__SHELL_FILES__", json.dumps(files)))


@bp.route("/sw.js")
def service_worker():
    """The service worker, served from the root so its scope is the whole site."""
    app = current_app._get_current_object()
    source = app.extensions.get("service_worker")
    if source is None or app.debug:
        source = app.extensions["service_worker"] = service_worker_source(app.static_folder, app.config["VERSION"])
    response = current_app.response_class(source, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.route("/offline")
def offline():
    """What the service worker shows when the network is gone."""
    return render_template("offline.html")
