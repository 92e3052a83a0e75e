"""The web application: ``create_app()`` builds it from defaults, the environment and a test dict."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from flask import Flask, g, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import BadRequest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from . import (__version__, access, admin, agenda, assets, auth, booking, cli, closing, config, db, events, i18n, notify, online, patient,
               payments, profile, records, site, storage, today, visit)
from .answers import htmx
from .forms import MAX_ID
from .models import Practice

ROOT = Path(__file__).resolve().parent.parent
csrf = CSRFProtect()

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'; manifest-src 'self'; "
       "worker-src 'self'")


# A token-carrying path in a log line (a request line, or an address after its host): a patient's
# link, a practitioner's calendar feed, an online booking's code page. Each token is a credential,
# and logs are read, kept and copied by more people than the database. docs/deploy/nginx.conf
# strips the same paths from nginx's log (tests/test_deploy_docs.py).
TOKEN_PATHS = ("/p/", "/agenda/feed/", "/book/code/")
LINK_IN_LOG = re.compile(r'(^|[\s"]|://[^/\s"]+)(' + "|".join(map(re.escape, TOKEN_PATHS)) + r')[^\s?#"/]+')
# The loggers that print request paths: the development server's (flask run) and gunicorn's access log.
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")


class LinkTokenFilter(logging.Filter):
    """Rewrites ``/p/<token>`` to ``/p/…`` (and the other ``TOKEN_PATHS``) in a log record, so no
    access log keeps a patient's link, a calendar feed's or a booking code's address.

    Installed by ``create_app`` on werkzeug's and gunicorn's access loggers; usable from a logging
    configuration as ``webapp.app.LinkTokenFilter`` (docs/deploy.md)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(path in message for path in TOKEN_PATHS):
            record.msg, record.args = LINK_IN_LOG.sub(r"\1\2…", message), ()
        return True


def _hide_link_tokens() -> None:
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LinkTokenFilter) for f in logger.filters):
            logger.addFilter(LinkTokenFilter())


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: a row id, 1 to MAX_ID. A larger number would overflow the
    database driver (a 500); out of range, it is simply not a page (404)."""

    def __init__(self, url_map, fixed_digits=0, min=1, max=MAX_ID, signed=False):
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class NulByte(BadRequest):
    """A NUL byte in the address or a form field."""


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults, environment, then the test dict; one init per subsystem."""
    test_config = dict(test_config or {}) or None
    app = Flask(__name__, instance_relative_config=True,
                instance_path=(test_config or {}).pop("INSTANCE_PATH", None),
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    make_instance_folder(Path(app.instance_path))
    app.url_map.converters["int"] = RowIdConverter     # before any route is added
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      MAX_CONTENT_LENGTH=25 * 1024 * 1024, WTF_CSRF_TIME_LIMIT=None)
    # Tests pass their environment as ENV, so the machine's own never leaks in.
    env = None if test_config is None else test_config.pop("ENV", {})
    app.config.update(config.from_environment(Path(app.instance_path), env))
    if test_config:
        app.config.update(test_config)
    app.config["VERSION"] = __version__
    if app.config["TRUSTED_PROXIES"]:
        # Only as many X-Forwarded-* entries as there are proxies of ours are believed; anything a
        # client adds before them is ignored. With none, the headers are not read at all.
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    assets.init_app(app)       # first: its gzip then runs after every other after_request
    db.init_app(app)
    i18n.init_app(app, ROOT / "translations")
    csrf.init_app(app)
    htmx.init_app(app)
    events.init_app(app)
    auth.init_app(app)
    storage.init_app(app)
    notify.init_app(app)
    booking.init_app(app)
    visit.init_app(app)
    _register_blueprints(app)
    # The phone of a visit's practice (its practitioner's profile), on the patient's pages that say
    # "contact your practice" (patient/_call_practice.html).
    app.jinja_env.globals["phones_of"] = online.practice_phones
    app.before_request(access.learn_site_url)     # after the user and the practice are known
    _refuse_nul_bytes(app)
    _hide_link_tokens()
    _security_headers(app)
    _error_pages(app)
    cli.init_app(app)
    return app


def make_instance_folder(path: Path) -> None:
    """The instance folder holds the keys, the database and the documents: its owner's alone."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)     # mkdir's mode passes through the umask


def _register_blueprints(app):
    for module in (auth, site, agenda, today, records, admin, patient, visit, closing, payments, profile, booking):
        app.register_blueprint(module.bp)

    @app.before_request
    def _practice():
        g.practice = Practice.select().order_by(Practice.id).first()


def _refuse_nul_bytes(app):
    """No browser sends a NUL byte in an address or a form, and PostgreSQL refuses one in any text
    (a 500 deep in a view): such a request is answered 400 before any view sees it."""
    @app.before_request
    def refuse():
        values = [request.path, *(v for _, vs in request.args.lists() for v in vs)]
        if request.method == "POST" and request.mimetype in ("application/x-www-form-urlencoded",
                                                             "multipart/form-data"):
            values += [v for _, vs in request.form.lists() for v in vs]
        if any("\x00" in v for v in values):
            raise NulByte()


def _security_headers(app):
    @app.after_request
    def headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
        if response.mimetype == "text/html":
            # The service worker reads it to show the offline page in the language last seen.
            response.headers.setdefault("Content-Language", str(get_locale()))
        return response


def _error_pages(app):
    messages = {
        400: lambda: _("The request could not be understood."),
        403: lambda: _("You are not allowed to see this page."),
        404: lambda: _("This page does not exist."),
        405: lambda: _("This action is not available here."),
        413: lambda: _("The file is too large."),
        429: lambda: _("Too many attempts. Please wait a minute and try again."),
        500: lambda: _("Something went wrong on our side. Please try again."),
    }

    def page(code, message):
        return render_template("error.html", code=code, message=message), code

    for code, message in messages.items():
        app.register_error_handler(code, lambda e, c=code, m=message: page(c, m()))

    @app.errorhandler(NulByte)
    def nul_byte(e):
        return page(400, _("This request holds a character that is not allowed (a null byte). Nothing was changed."))

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return page(400, _("This form has expired. Please reload the page and try again."))
