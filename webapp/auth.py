"""Staff sign-in, the TOTP second factor, sessions that end, and the one place where roles are checked.

A staff session holds: ``uid``, ``ver`` (the user's ``session_version`` when it was made: raising it
ends every session of that user), ``at`` (sign-in time) and ``seen`` (last request), both in epoch
seconds, a random ``sid`` (so each sign-in gives a new cookie value), and ``mfa``: true once the
second factor was checked, or when the account has none and needs none. A session without ``mfa``
is half signed in: it reaches only the second-factor pages.
"""
from __future__ import annotations

import functools
import hmac
import secrets
import time
from datetime import timedelta

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, current_app, g, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l, lazy_ngettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import InputRequired, ValidationError

from .cooperative import offload
from .models import AuditEvent, RecoveryCode, User, db
from .answers import form_status, render, same_site_path
from .i18n import available_locales

bp = Blueprint("auth", __name__)
# The client is request.remote_addr: behind TRUSTED_PROXIES reverse proxies, ProxyFix (app.py) has
# already put the real client's address there, so one client cannot exhaust the proxy's quota.
limiter = Limiter(key_func=get_remote_address, default_limits=[], storage_uri="memory://")
hasher = PasswordHasher()

# Verified against when the e-mail is unknown, so both answers take as long.
_DUMMY_HASH = hasher.hash("not a password")
TOTP_STEP = 30
RECOVERY_CODES = 10
MIN_PASSWORD = 10

ENDED = {
    "idle": _l("Your session ended after a period of inactivity. Please sign in again."),
    "max": _l("Your session reached its maximum length. Please sign in again."),
    "revoked": _l("You were signed out. Please sign in again."),
}


def long_enough(form, field):
    """A password field's validator: empty (others say whether one is needed) or MIN_PASSWORD long."""
    if field.data and len(field.data) < MIN_PASSWORD:
        raise ValidationError(lazy_ngettext("At least %(num)d character.", "At least %(num)d characters.",
                                            MIN_PASSWORD))


def hash_password(password: str) -> str:
    return offload(hasher.hash, password)      # ~50 ms of CPU: under gevent, off the event loop


def check_password(user: User | None, password: str) -> bool:
    try:
        return offload(hasher.verify, user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def staff_session(user: User, second_factor_done: bool) -> dict:
    """The contents of a fresh staff session for ``user``."""
    now = int(time.time())
    return {"uid": user.id, "ver": user.session_version, "at": now, "seen": now,
            "sid": secrets.token_urlsafe(16), "mfa": second_factor_done}


def keep_this_session(user: User):
    """After ending a user's sessions on their own behalf (a password change), keep the current one."""
    if session.get("uid") == user.id:
        session["ver"] = user.session_version


def staff_required(*roles):
    """Only signed-in staff (second factor included), and only the given roles when any are named."""
    def wrap(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            if g.user is None:
                if g.get("half_signed_in") is not None:
                    return redirect(url_for("auth.second_factor"))
                return redirect(url_for("auth.login", next=request.full_path))
            if roles and g.user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return guarded
    return wrap


def _session_problem(user: User | None) -> str | None:
    if user is None or not user.active or session.get("ver") != user.session_version:
        return "revoked"
    now, config = time.time(), current_app.config
    if not isinstance(session.get("at"), int) or now - session["at"] > config["SESSION_MAX_HOURS"] * 3600:
        return "max"
    if not isinstance(session.get("seen"), int) or now - session["seen"] > config["SESSION_IDLE_MINUTES"] * 60:
        return "idle"
    return None


def load_user():
    """Put the signed-in user (or None) on ``g``; end a session that is too old, idle or revoked."""
    g.user = g.half_signed_in = None
    uid = session.get("uid")
    if not uid:
        return
    user = User.get_or_none(User.id == uid) if isinstance(uid, int) else None
    problem = _session_problem(user)
    if problem:
        session.clear()
        session["ended"] = problem
        return
    session["seen"] = int(time.time())
    if session.get("mfa") is True:
        g.user = user
    else:
        g.half_signed_in = user


# Rate-limit keys: the client (default) and the account, so a guesser spread over many addresses
# still meets a limit, and one client's failures never lock out the others.

def _login_account() -> str:
    return "account:" + (request.form.get("email") or "").strip().lower()[:254]


def _factor_account() -> str:
    return f"factor:{session.get('uid')}"


def _failed(response) -> bool:
    return response.status_code >= 400


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(_l("Enter your e-mail address."))])
    password = PasswordField(_l("Password"), validators=[InputRequired(_l("Enter your password."))])


class CodeForm(FlaskForm):
    code = StringField(_l("Code"), validators=[InputRequired(_l("Enter the code."))],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True})


def _safe_next(target: str | None) -> str:
    return same_site_path(target) or url_for("agenda.today")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
@limiter.limit("10 per minute; 30 per hour", methods=["POST"], key_func=_login_account, deduct_when=_failed)
def login():
    """Sign in with e-mail and password; then the second factor, when the account has or needs one."""
    form = LoginForm()
    error = ENDED.get(session.pop("ended", None)) if request.method == "GET" else None
    if form.validate_on_submit():
        user = User.by_email(form.email.data)
        if check_password(user, form.password.data) and user.active:
            needs_factor = user.has_second_factor or user.needs_second_factor
            session.clear()          # nothing from before signing in survives it
            session.permanent = True
            session.update(staff_session(user, second_factor_done=not needs_factor))
            AuditEvent.record(user, "staff.login")
            target = _safe_next(request.args.get("next"))
            if needs_factor:
                session["next"] = target
                return redirect(url_for("auth.second_factor"))
            return redirect(target)
        error = _l("Wrong e-mail or password.")
        # Never the password, nor an e-mail that matches no account (someone else's personal data,
        # or a password typed in the wrong field): the account's id when it is one, and the address.
        AuditEvent.record("anonymous", "staff.login_failed", detail=f"user:{user.id}" if user else "")
    return render("auth/login.html", form=form, error=error, status=401 if form.is_submitted() and error else 200)


def _matching_step(secret: str, code: str, after: int) -> int | None:
    """The time step (now, or one either side) whose code is ``code``, if later than ``after``."""
    totp, now = pyotp.TOTP(secret, interval=TOTP_STEP), int(time.time()) // TOTP_STEP
    for step in (now - 1, now, now + 1):
        if step > after and hmac.compare_digest(totp.at(step * TOTP_STEP), code):
            return step
    return None


def _clean(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def check_code(user: User, code: str) -> bool:
    """A TOTP code not used before, or an unused recovery code (then spent)."""
    code = _clean(code)
    if len(code) == 6 and code.isdigit():
        step = _matching_step(user.totp_secret, code, user.totp_last_step)
        return step is not None and user.use_totp_step(step)
    for saved in RecoveryCode.unused(user):
        try:
            if offload(hasher.verify, saved.code_hash, code):
                return saved.use()
        except (VerificationError, InvalidHashError):
            continue
    return False


def _finish_sign_in():
    """The second factor is done: mark it, with a fresh cookie value, and go where the user was going."""
    target = session.pop("next", None) or url_for("agenda.today")
    session.update(mfa=True, sid=secrets.token_urlsafe(16))
    return redirect(_safe_next(target))


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
@limiter.limit("5 per minute; 20 per hour", methods=["POST"], key_func=_factor_account, deduct_when=_failed)
def second_factor():
    """Second step of signing in: a code from the authenticator app, or a recovery code."""
    user = g.get("half_signed_in")
    if user is None:
        return redirect(url_for("agenda.today") if g.user else url_for("auth.login"))
    if not user.has_second_factor:
        return redirect(url_for("auth.enrol"))
    form, error = CodeForm(), None
    if form.validate_on_submit():
        if check_code(user, form.code.data):
            return _finish_sign_in()
        user.second_factor_failed()
        error = _l("This code is not right, or was already used.")
    return render("auth/code.html", form=form, error=error, status=401 if error else 200)


def _enrolling_user():
    """Who may enrol here: a half-signed-in user without a factor, or a signed-in one without one."""
    user = g.user or g.get("half_signed_in")
    return user if user is not None and not user.has_second_factor else None


def new_recovery_codes() -> list[str]:
    return [f"{c[:5]}-{c[5:]}" for c in (secrets.token_hex(5) for _ in range(RECOVERY_CODES))]


@bp.route("/second-factor", methods=["GET", "POST"])
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
@limiter.limit("5 per minute; 20 per hour", methods=["POST"], key_func=_factor_account, deduct_when=_failed)
def enrol():
    """Set up the authenticator app: scan the code (or type the key), confirm with a first code."""
    user = _enrolling_user()
    if user is None:
        return redirect(url_for("auth.account") if g.user else url_for("auth.login"))
    secret = session.get("enrol_secret") or pyotp.random_base32()
    session["enrol_secret"] = secret
    form, error = CodeForm(), None
    if form.validate_on_submit():
        step = _matching_step(secret, _clean(form.code.data), 0)
        if step is not None:
            codes = new_recovery_codes()
            user.enrol_second_factor(secret, step, [hash_password(_clean(c)) for c in codes])
            session.pop("enrol_secret")
            target = session.pop("next", None) or url_for("agenda.today")
            session.update(mfa=True, sid=secrets.token_urlsafe(16))
            return render("auth/recovery_codes.html", codes=codes, next=_safe_next(target))
        user.second_factor_failed()
        error = _l("This code is not right. Check the time on your phone and try the next code.")
    uri = pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(
        name=user.email, issuer_name=(g.practice.name if g.get("practice") else "") or "Cabinet")
    return render("auth/enrol.html", form=form, error=error, secret=secret, user=user,
                  qr=segno.make(uri, error="m").svg_data_uri(scale=4, border=2),
                  status=401 if error else form_status(form))


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[InputRequired(_l("Enter your current password."))],
                            render_kw={"autocomplete": "current-password"})
    new = PasswordField(_l("New password"), validators=[InputRequired(_l("Choose a new password.")), long_enough],
                        render_kw={"autocomplete": "new-password"})
    again = PasswordField(_l("New password again"), validators=[InputRequired(_l("Type the new password again."))],
                          render_kw={"autocomplete": "new-password"})

    def validate_again(self, field):
        if self.new.data and field.data != self.new.data:
            raise ValidationError(_l("The two new passwords differ."))


def _account_page(form: PasswordForm, status: int = 200):
    return render("auth/account.html", user=g.user, form=form, status=status, min_password=MIN_PASSWORD,
                  codes_left=RecoveryCode.unused(g.user).count() if g.user.has_second_factor else 0)


@bp.route("/account")
@staff_required()
def account():
    """The signed-in user's own account: their password and second factor."""
    return _account_page(PasswordForm(formdata=None))


def _password_account() -> str:
    return f"password:{session.get('uid')}"


@bp.route("/account/password", methods=["POST"])
@staff_required()
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
@limiter.limit("5 per minute; 20 per hour", methods=["POST"], key_func=_password_account, deduct_when=_failed)
def change_password():
    """The signed-in user changes their own password, knowing the current one (a session left open on
    a shared computer is not enough). Their other sessions end; this one goes on."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _account_page(form, status=form_status(form))
    if not check_password(g.user, form.current.data):
        AuditEvent.record(g.user, "staff.password_change_failed", detail=f"user:{g.user.id}")
        form.current.errors = [_l("This is not your current password.")]
        return _account_page(form, status=422)
    password_hash = hash_password(form.new.data)
    with db.atomic():
        g.user.password_hash = password_hash
        g.user.save()
        g.user.end_sessions()
        AuditEvent.record(g.user, "staff.password_changed", detail=f"user:{g.user.id}")
    keep_this_session(g.user)
    return redirect(url_for("auth.account", changed=1))


@bp.route("/account/language", methods=["POST"])
@staff_required()
def language():
    """The signed-in user's own language, chosen from the picker in the header of every staff page."""
    chosen = request.form.get("locale", "")
    back = same_site_path(request.form.get("next")) or url_for("site.home")
    if chosen not in available_locales():
        return render("auth/language_refused.html", language_next=back, status=422)
    if chosen != g.user.locale:
        g.user.locale = chosen
        g.user.save()
        AuditEvent.record(g.user, "staff.locale_chosen", detail=f"user:{g.user.id} locale:{chosen}")
    return redirect(back)


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out, here and on every other browser of this user."""
    user = g.user or g.get("half_signed_in")
    if user is not None:
        user.end_sessions()
    session.clear()
    return redirect(url_for("auth.login"))


def init_app(app):
    # The cookie outlives no session: the absolute limit is also checked on every request.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["SESSION_MAX_HOURS"])
    limiter.init_app(app)
    app.before_request(load_user)
