"""Online booking: the public pages where patients book a free slot (``public.py``) and the staff's
list of bookings waiting for approval and of records to check (``staff.py``).

(The patient's own cancel and move, from their link, are ``patient/change.py``; the rules both
share are ``webapp/online.py``.)
"""
from flask import Blueprint

bp = Blueprint("booking", __name__)

from . import public, staff  # noqa: E402,F401 - their routes live on this blueprint


def init_app(app) -> None:
    """The count of online bookings waiting, for the staff header (asked only there)."""
    app.context_processor(lambda: {"online_bookings_waiting": staff.waiting_count})
