"""The practitioner's day: who is waiting and since when, live; admit, message, send back."""
from __future__ import annotations

import datetime as dt
import threading
import time

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import get_locale, get_timezone
from flask_babel import gettext as _, ngettext
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from . import events, notify
from .access import appointment_or_404, may_resume, visible_practitioners
from .answers import after_change, full_page_load, render
from .auth import staff_required
from .events import announce, today_channel
from .i18n import local_to_utc, utc_to_local, waiting_note_presets
from .models import Appointment, User, db, utcnow

bp = Blueprint("today", __name__, url_prefix="/today")

IDLE_REFRESH_SECONDS = 30
NOTE_MAX = 300
# A live page's forms get a fresh CSRF token this often (tokens expire after an hour).
CSRF_REFRESH_SECONDS = 600
ROW_CACHE_MAX = 5000
_rows: dict = {}


def device_words():
    # Translators: the patient's device check as the practitioner reads it: "camera: works", "connection: slow"
    return {"camera": _l("camera"), "microphone": _l("microphone"), "speaker": _l("sound"), "network": _l("connection"),
            "ok": _l("works"), "denied": _l("blocked"), "missing": _l("none found"), "busy": _l("in use elsewhere"),
            "error": _l("failed"), "silent": _l("silent"), "no": _l("not heard"), "unknown": _l("not checked"),
            "good": _l("good"), "fair": _l("fair"), "poor": _l("slow"), "offline": _l("offline"),
            "unsupported": _l("browser cannot use it")}


def waiting_rows(waiting, now, words) -> list:
    """Each waiting patient's row, rendered once per what it shows.

    Every arrival re-renders the whole day on every practitioner page; with 50
    patients waiting, rendering each row again made that take hundreds of ms.
    The key holds everything a row shows, so a cached row is never stale.
    """
    generate_csrf()  # rows share the session's CSRF secret; a row re-renders (new token) at least every minute
    shown = (str(get_locale()), str(get_timezone()), g.user.role if g.user else "",
             session.get(current_app.config["WTF_CSRF_FIELD_NAME"]))
    html = []
    for appt in waiting:
        minutes = int((now - appt.waiting_since).total_seconds() // 60)
        online = events.patient_tabs.online(appt.ref)
        key = shown + (appt.id, appt.patient_name, appt.starts_at, appt.practitioner.name, appt.waiting_since,
                       minutes, online, appt.device_check, appt.waiting_note)
        row = _rows.get(key)
        if row is None:
            if len(_rows) >= ROW_CACHE_MAX:
                _rows.clear()
            row = _rows[key] = Markup(render_template("today/_waiting_row.html", appt=appt, minutes=minutes,
                                                      is_online=online, device_words=words))
        html.append(row)
    return html


def load_day(practitioner_ids, tz, today):
    start = local_to_utc(dt.datetime.combine(today, dt.time()), tz)
    rows = Appointment.for_today(practitioner_ids, start, start + dt.timedelta(days=1))
    people = {u.id: u for u in User.select().where(User.id.in_(list(practitioner_ids)))}
    for appt in rows:
        appt.practitioner = people.get(appt.practitioner_id) or appt.practitioner   # one query, not one per row
    return rows


class _Load:
    def __init__(self):
        self.started, self.rows, self.done = time.monotonic(), None, threading.Event()


_loads: dict = {}
_loads_lock = threading.Lock()


def shared_day(practitioner_ids, tz, today, changed_at: float):
    """The day's rows, loaded once for all live pages that learnt of the same change.

    A page may use a load that began after it heard of the change (``changed_at``,
    its own clock reading): that load saw the change, whatever the hub behind events.
    """
    key = (tuple(sorted(practitioner_ids)), tz, today)
    with _loads_lock:
        load = _loads.get(key)
        mine = load is None or load.started < changed_at
        if mine:
            if load is None and len(_loads) >= 100:
                _loads.clear()  # yesterday's days and departed practitioners' sets
            load = _loads[key] = _Load()
    if mine:
        try:
            load.rows = load_day(practitioner_ids, tz, today)
        finally:
            load.done.set()
    elif not load.done.wait(5) or load.rows is None:
        return load_day(practitioner_ids, tz, today)
    return load.rows


def day_context(practitioner_ids, changed_at: float | None = None):
    """The day's teleconsultations of these practitioners, waiting ones first."""
    tz = g.practice.timezone
    today = utc_to_local(utcnow(), tz).date()
    rows = (load_day(practitioner_ids, tz, today) if changed_at is None
            else shared_day(practitioner_ids, tz, today, changed_at))
    waiting, now, words = [a for a in rows if a.status == "waiting"], utcnow(), device_words()
    return {"rows": rows, "waiting": waiting, "waiting_rows": waiting_rows(waiting, now, words), "now": now,
            "presets": waiting_note_presets(), "today": today, "resumable": may_resume}


def _ids():
    return [p.id for p in visible_practitioners()]


@bp.route("/")
@staff_required()
def index():
    """Today's teleconsultations, with the waiting room on top."""
    # Its live socket and sound need the page's own scripts: a boosted link loads it in full.
    return full_page_load() or render("today/index.html", "today/_day.html", **day_context(_ids()))


def _waiting_or_409(appointment_id):
    appt = appointment_or_404(appointment_id)
    if appt.status != "waiting":
        abort(409)
    return appt


def _done(appt):
    announce(appt)
    return after_change(url_for("today.index"), "today/_day.html", **day_context(_ids()))


@bp.route("/<int:appointment_id>/admit", methods=["POST"])
@staff_required("practitioner")
def admit(appointment_id):
    """Let the waiting patient in: both sides move to the call page."""
    appt = _waiting_or_409(appointment_id)
    appt.admit(g.user)
    announce(appt)
    return redirect(url_for("visit.staff_call", appointment_id=appt.id))


@bp.route("/<int:appointment_id>/note", methods=["POST"])
@staff_required()
def note(appointment_id):
    """A message to the patient in the waiting room (an empty one removes it)."""
    appt = appointment_or_404(appointment_id)
    text = request.form.get("text", "").strip()
    if len(text) > NOTE_MAX:
        return render("today/index.html", "today/_day.html", status=422,
                      error=ngettext("A message has at most %(num)d character.",
                                     "A message has at most %(num)d characters.", NOTE_MAX), **day_context(_ids()))
    appt.leave_note(g.user, text)
    return _done(appt)


@bp.route("/<int:appointment_id>/send-back", methods=["POST"])
@staff_required()
def send_back(appointment_id):
    """Send a waiting patient back with a new time today; their link keeps working."""
    appt = _waiting_or_409(appointment_id)
    try:
        new_time = dt.datetime.strptime(request.form.get("time", ""), "%H:%M").time()
    except ValueError:
        new_time = None
    tz = g.practice.timezone
    starts_at = new_time and local_to_utc(dt.datetime.combine(utc_to_local(utcnow(), tz).date(), new_time), tz)
    if not starts_at or starts_at <= utcnow():
        return render("today/index.html", "today/_day.html", status=422,
                      error=_("Choose a later time today, like 14:30."), **day_context(_ids()))
    appt.send_back(g.user, starts_at)
    notify.queue(appt, "moved")   # in case the patient closes the waiting room before reading it
    return _done(appt)


@events.sock.route("/live", bp=bp)
def live(ws):
    """Push the day's list whenever a patient arrives, leaves or is admitted."""
    if g.user is None:
        events.close_with(ws, 1008, "sign in")
        return
    ids = _ids()
    db.close()  # a socket lives long: hold a connection only while rendering
    with events.staff_slot(g.user.id) as admitted:
        if not admitted:
            events.close_with(ws, events.TOO_MANY, "too many pages")
            return
        _push_day(ws, ids)


def _push_day(ws, ids):
    token_at = time.monotonic()
    with events.subscribe(*(today_channel(i) for i in ids)) as subscription:
        subscription.watch(ws)      # its messages and its close wake the loop: no polling
        try:
            while ws.connected:
                item = subscription.get(timeout=subscription.patience(IDLE_REFRESH_SECONDS))
                changed_at = time.monotonic() if item is not None else None
                while item is not None and subscription.get(timeout=0) is not None:
                    pass  # several changes at once: one render shows them all
                if item is not None or subscription.idle_for(IDLE_REFRESH_SECONDS):
                    if time.monotonic() - token_at > CSRF_REFRESH_SECONDS:
                        g.pop(current_app.config["WTF_CSRF_FIELD_NAME"], None)  # generate_csrf() makes a new one
                        token_at = time.monotonic()
                    with db.connection_context():
                        ws.send(render_template("today/_day.html", oob=True, **day_context(ids, changed_at)))
                while ws.receive(timeout=0) is not None:
                    pass  # the page sends nothing we act on; keep the buffer empty
        except events.SOCKET_GONE:
            pass
