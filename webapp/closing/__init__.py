"""Closing a visit: the checklist (traceability, report, documents, acts, payment), then the close."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("closing", __name__, url_prefix="/visits")

from . import acts, views  # noqa: E402,F401  (the routes register themselves on bp)
