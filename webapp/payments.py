"""The practice's payments: requests, their status, and the CSV export of coded acts."""
from __future__ import annotations

from flask import Blueprint, render_template

from .auth import staff_required

bp = Blueprint("payments", __name__, url_prefix="/payments")


@bp.route("/")
@staff_required()
def index():
    """Payment requests, filtered by date, practitioner and status."""
    return render_template("payments/index.html")
