"""How a view answers: the whole page or only its fragment, a client redirect, a trigger.

Whether a request wants a fragment is decided here and nowhere else; flask-htmx's
``make_response`` sets the htmx response headers.
"""
from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import make_response as flask_response, redirect, render_template, request
from flask_htmx import HTMX, make_response

htmx = HTMX()


def wants_fragment() -> bool:
    """An htmx request that swaps part of a page. Boosted links and history restores are
    htmx requests too, but they want the whole page."""
    return bool(htmx and not htmx.boosted and not htmx.history_restore_request)


def render(page: str, fragment: str | None = None, status: int = 200, trigger: str | None = None, **context):
    """The full page, or only ``fragment`` when the request wants one; varies on HX-Request.

    ``trigger`` names an event htmx fires on the page once it has swapped the answer.
    """
    template = fragment if fragment and wants_fragment() else page
    response = make_response(render_template(template, **context), status, trigger=trigger)
    response.vary.add("HX-Request")
    return response


def same_site_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site ("/agenda/"), else None: never an open redirect.

    Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so "/", tab,
    "/evil.example" leads to another host. A target holding a backslash or any control character
    (a CR or LF would also break the Location header) is refused rather than cleaned.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def after_change(url: str, page: str, fragment: str | None = None, trigger: str | None = None, **context):
    """After a POST: htmx swaps the part that changed; a plain form (or a boosted one) is
    redirected to ``url``, so a reload never posts twice."""
    if not wants_fragment():
        return redirect(url)
    return render(page, fragment, trigger=trigger, **context)


def full_page_load():
    """For a boosted navigation, an answer telling htmx to load the page in full; otherwise None.

    A boosted navigation swaps only the body, so a page's own scripts (the device
    check, the live socket, the call) would never run; htmx follows HX-Redirect with a real load.
    """
    if htmx and htmx.boosted:
        return make_response("", 200, redirect=request.full_path.rstrip("?"))
    return None


def page_with_scripts(page: str, status: int = 200, **context):
    """A page that runs scripts of its own: rendered for a real load, reloaded for real when htmx asks."""
    return make_response(render_template(page, **context), status, redirect=request.path if htmx else None)


def form_status(form) -> int:
    """422 when a submitted form has errors, so htmx and tests can tell; else 200."""
    return 422 if form.errors else 200


def go_to(url: str):
    """Leave the page for ``url``: htmx follows a client redirect, a plain form a 303."""
    if wants_fragment():
        return make_response("", 200, redirect=url)
    return redirect(url, 303)


def no_store(view):
    """Clinical content and personal data: no cache (the browser's, a proxy's) keeps a copy.

    Every answer of the view, redirects and htmx fragments included, says ``Cache-Control:
    private, no-store``; a shared computer's back button or disk cache then holds nothing of the patient.
    """
    @functools.wraps(view)
    def uncached(*args, **kwargs):
        response = flask_response(view(*args, **kwargs))
        response.headers["Cache-Control"] = "private, no-store"
        return response
    uncached.no_store = True
    return uncached
