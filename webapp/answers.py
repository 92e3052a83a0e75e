"""Small helpers every blueprint uses to answer."""
from __future__ import annotations

from flask import make_response, render_template
from flask_htmx import HTMX

htmx = HTMX()


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """The full page, or only ``fragment`` for an htmx request; varies on HX-Request.

    Boosted links and history restores are htmx requests that want the whole page.
    """
    partial = htmx and not htmx.boosted and not htmx.history_restore_request
    template = fragment if fragment and partial else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def form_status(form) -> int:
    """422 when a submitted form has errors, so htmx and tests can tell; else 200."""
    return 422 if form.errors else 200
