"""A real SMTP server for tests: aiosmtpd on a free loopback port, collecting what it receives.

    with smtp_server() as smtp:
        app = make_app(tmp_path, ENV={..., **smtp.env})     # or app.config.update(smtp.config)
        ...
        mail = smtp.wait_for(1)[0]                            # an email.message.EmailMessage
        link = smtp.link_in(mail)                             # the patient link from its text part

``smtp_server(port=...)`` reuses a port, so a test can stop the server and start it again
("SMTP down, then back").
"""
from __future__ import annotations

import contextlib
import email
import email.policy
import re
import socket
import threading
import time

from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://\S+/p/[A-Za-z0-9._\-]+")


def free_port() -> int:
    """A TCP port nobody listens on at this moment (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Collector:
    """The aiosmtpd handler: keeps every message received, parsed, in order."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=email.policy.default)
        with self._lock:
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self, port: int):
        self.host, self.port = "127.0.0.1", port
        self.collector = Collector()
        self.controller = Controller(self.collector, hostname=self.host, port=port)

    @property
    def messages(self):
        return list(self.collector.messages)

    @property
    def env(self) -> dict:
        """Environment variables (strings) that point the app at this server."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port)}

    @property
    def config(self) -> dict:
        """The same as app config values."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": self.port}

    def wait_for(self, count: int = 1, timeout: float = 5.0):
        """The first ``count`` messages, waiting up to ``timeout`` seconds for them."""
        deadline = time.monotonic() + timeout
        while len(self.collector.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        messages = self.messages
        assert len(messages) >= count, f"expected {count} e-mail(s), got {len(messages)}"
        return messages[:count]

    @staticmethod
    def text_of(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def html_of(message) -> str:
        return message.get_body(preferencelist=("html",)).get_content()

    @classmethod
    def link_in(cls, message) -> str:
        """The patient link (absolute URL) in the e-mail's text part."""
        found = LINK.search(cls.text_of(message))
        assert found, "no patient link in the e-mail"
        return found.group(0)

    @staticmethod
    def attachment(message, content_type: str = "text/calendar") -> bytes | None:
        for part in message.walk():
            if part.get_content_type() == content_type:
                return part.get_payload(decode=True)
        return None


@contextlib.contextmanager
def smtp_server(port: int | None = None):
    """Run aiosmtpd on 127.0.0.1 (a free port unless given) for the ``with`` block."""
    server = SMTPServer(port or free_port())
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()
