"""The patient's side of a visit: the link, the way in (identity, consent, device check),
the waiting room, a lost link, and the patient's space after the visit.

(The practice's own patient records are ``webapp/records.py``; the call itself is ``webapp/visit/``.)
"""
from flask import Blueprint

bp = Blueprint("patient", __name__)

from . import change, entry, join, lost, space, waiting  # noqa: E402,F401 - their routes live on this blueprint
