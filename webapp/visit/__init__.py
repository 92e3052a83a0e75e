"""The call, both sides: the call pages, the signaling bridge to the relay worker, chat, files
and incidents (``bridge.py``, ``pages.py``, ``files.py``), and where the relay is (``relays.py``).
"""
from flask import Blueprint

from .relays import init_app

bp = Blueprint("visit", __name__)

from . import bridge, files, pages  # noqa: E402,F401 - their routes live on this blueprint

__all__ = ["bp", "init_app"]
