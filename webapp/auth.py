"""Staff sign-in, sessions and the one place where roles are checked."""
from __future__ import annotations

import functools
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, g, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired

from .models import AuditEvent, User
from .answers import render, same_site_path

bp = Blueprint("auth", __name__)
limiter = Limiter(key_func=get_remote_address, default_limits=[], storage_uri="memory://")
hasher = PasswordHasher()

SESSION_HOURS = 12
# Verified against when the e-mail is unknown, so both answers take as long.
_DUMMY_HASH = hasher.hash("not a password")


def hash_password(password: str) -> str:
    return hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    try:
        return hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def staff_required(*roles):
    """Only signed-in staff, and only the given roles when any are named."""
    def wrap(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            if g.user is None:
                return redirect(url_for("auth.login", next=request.full_path))
            if roles and g.user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return guarded
    return wrap


def load_user():
    """Put the signed-in user (or None) on ``g`` for this request."""
    uid = session.get("uid")
    user = User.get_or_none(User.id == uid) if uid else None
    g.user = user if user is not None and user.active else None


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(_l("Enter your e-mail address."))])
    password = PasswordField(_l("Password"), validators=[InputRequired(_l("Enter your password."))])


def _safe_next(target: str | None) -> str:
    return same_site_path(target) or url_for("agenda.today")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
def login():
    """Sign in with e-mail and password."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = User.by_email(form.email.data)
        if check_password(user, form.password.data) and user.active:
            session.clear()
            session.permanent = True
            session["uid"] = user.id
            AuditEvent.record(user, "staff.login")
            return redirect(_safe_next(request.args.get("next")))
        error = _l("Wrong e-mail or password.")
        # Never the password, nor an e-mail that matches no account (someone else's personal data,
        # or a password typed in the wrong field): the account's id when it is one, and the address.
        AuditEvent.record("anonymous", "staff.login_failed", detail=f"user:{user.id}" if user else "")
    return render("auth/login.html", form=form, error=error, status=401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out."""
    session.clear()
    return redirect(url_for("auth.login"))


def init_app(app):
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=SESSION_HOURS))
    limiter.init_app(app)
    app.before_request(load_user)
