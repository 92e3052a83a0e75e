"""Site-wide pages: home, health, and the progressive web app's shell."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, redirect, send_from_directory, url_for
from flask_babel import gettext as _

from .models import db

bp = Blueprint("site", __name__)


@bp.route("/")
def home():
    """Staff go to their agenda; everyone else to the sign-in page."""
    return redirect(url_for("agenda.today" if g.user else "auth.login"))


@bp.route("/healthz")
def healthz():
    """The state of the database and of the relay as JSON for monitoring."""
    from .db import schema_version
    try:
        db.execute_sql("SELECT 1")
        database = {"ok": True, "schema": schema_version()}
    except Exception as exc:  # noqa: BLE001 - any failure is what monitoring must see
        current_app.logger.warning("healthz: database check failed: %s", type(exc).__name__)
        database = {"ok": False, "error": type(exc).__name__}
    relay = current_app.extensions["relay"].health()   # reported, never a reason to fail: calls reconnect
    body = {"ok": database["ok"], "version": current_app.config["VERSION"], "database": database, "relay": relay}
    return jsonify(body), 200 if database["ok"] else 503


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


@bp.route("/sw.js")
def service_worker():
    """The service worker, served from the root so its scope is the whole site."""
    response = send_from_directory(current_app.static_folder, "sw.js", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.route("/offline")
def offline():
    """What the service worker shows when the network is gone."""
    from flask import render_template
    return render_template("offline.html")
