"""The call: signaling bridge to the relay worker, the call pages, chat, files and incidents."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("visit", __name__)


def init_app(app) -> None:
    """Start the embedded relay worker unless RELAY_URLS names external ones."""
