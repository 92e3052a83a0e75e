"""Closing a visit: the checklist (traceability, report, documents, acts, payment), then the close."""
from __future__ import annotations

from flask import Blueprint, render_template

from ..auth import staff_required

bp = Blueprint("closing", __name__, url_prefix="/visits")


@bp.route("/open")
@staff_required()
def unclosed():
    """Visits not yet closed, so none is forgotten."""
    return render_template("closing/unclosed.html")
