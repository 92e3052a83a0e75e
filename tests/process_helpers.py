"""Helpers for tests (and benches) that start real processes and read real sockets."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from simple_websocket import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent


class DidNotStart(Exception):
    """A process ended, or never printed its ready line; the message ends with its log."""


def start_logged(argv: list[str], env: dict, ready: str, log: Path, wait: float = 10) -> tuple[subprocess.Popen, str]:
    """A process whose log (stdout and stderr) shows a line matching ``ready`` within ``wait``
    seconds; returns it and the match's first group. DidNotStart otherwise (the process killed)."""
    with log.open("w") as out:      # the child writes on its own copy of the descriptor
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = re.search(ready, log.read_text())
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise DidNotStart(f"{argv[:3]} did not start:\n{log.read_text()[-3000:]}")


def closed_with(socket, wait: float = 10) -> int:
    """The close code the server ends ``socket`` with (messages before it are skipped)."""
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            socket.receive(timeout=0.2)
    except ConnectionClosed:
        return socket.close_reason
    raise AssertionError("the socket stayed open")


def message_with(socket, text: str, wait: float = 10) -> str:
    """The first message within ``wait`` seconds that holds ``text``."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        message = socket.receive(timeout=max(0.01, deadline - time.monotonic()))
        if message is not None and text in message:
            return message
    raise AssertionError(f"nothing with {text!r} arrived")
