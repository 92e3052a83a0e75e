"""Delivery: e-mail over SMTP, SMS through a backend. Errors come back as ``DeliveryError``
whose text names the failure (class, SMTP or HTTP code) and never the recipient or the content.
"""
from __future__ import annotations

import base64
import json
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formataddr, formatdate, make_msgid

from flask import has_app_context
from flask_babel import force_locale, gettext

SMTP_TIMEOUT = 30
HTTP_TIMEOUT = 15


class DeliveryError(Exception):
    """A message could not be handed over; the text is safe to store and show to staff."""


def _safe(exc: BaseException, *secrets: str) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = f"{type(exc).__name__}: SMTP {exc.smtp_code}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _msg in exc.recipients.values()})
        text = f"SMTPRecipientsRefused: SMTP {', '.join(map(str, codes))}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{type(exc).__name__}: {exc.strerror}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    return text[:300]


class MailPolicy(EmailPolicy):
    """The standard policy, except that a header's value always starts on the header's own line.

    Python folds a value that does not fit after ``Subject: `` but would fit on a line of its
    own by starting it on the next line (``Subject:\\n Your teleconsultation…``): the value then
    begins with a space, which some mail clients show. Lines stay far under the 998-character
    limit of RFC 5322; only the 78-character recommendation gives way, for the first line.
    """

    def fold(self, name, value):
        return _keep_first_line(name, super().fold(name, value), self.linesep)

    def fold_binary(self, name, value):
        folded = super().fold_binary(name, value).decode("ascii", "surrogateescape")
        return _keep_first_line(name, folded, self.linesep).encode("ascii", "surrogateescape")


def _keep_first_line(name: str, folded: str, linesep: str) -> str:
    lead = f"{name}:{linesep} "
    return f"{name}: {folded[len(lead):]}" if folded.startswith(lead) else folded


POLICY = MailPolicy()


def calendar_file_name(locale: str) -> str:
    """The .ics attachment's name in the reader's language (what their mail app shows)."""
    if not has_app_context():
        return "invitation.ics"
    with force_locale(locale or "fr"):
        # Translators: the name of the calendar file attached to an invitation e-mail (".ics" is
        # added): one word, or words joined by hyphens
        name = gettext("teleconsultation")
    return f"{name}.ics"


def build_email(message, sender: str, practice_name: str) -> EmailMessage:
    """The MIME message: text and HTML alternatives, and the .ics when there is one."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = formataddr((practice_name, sender)) if practice_name else sender
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "cabinet")
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.body)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    if message.ics:
        method = "CANCEL" if "METHOD:CANCEL" in message.ics else "REQUEST"
        mail.add_attachment(message.ics.encode("utf-8"), maintype="text", subtype="calendar",
                            filename=calendar_file_name(message.locale),
                            params={"method": method, "charset": "utf-8"})
    # After the parts: setting the content replaces the Content-* headers.
    mail["Content-Language"] = message.locale
    return mail


def send_email(message, config: dict, practice_name: str = "") -> None:
    """Hand one e-mail to the SMTP server of the settings."""
    host, port = config.get("SMTP_HOST"), config.get("SMTP_PORT") or 25
    if not host:
        raise DeliveryError("SMTP_HOST is not set")
    mail = build_email(message, config.get("MAIL_FROM") or "cabinet@localhost", practice_name)
    try:
        if config.get("SMTP_TLS") and port == 465:
            smtp = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
        with smtp:
            if config.get("SMTP_TLS") and port != 465:
                smtp.starttls(context=ssl.create_default_context())
            if config.get("SMTP_USER"):
                smtp.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
            smtp.send_message(mail)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(_safe(exc, message.recipient)) from None


# SMS backends: one interface, ``send(to, text)``; raising DeliveryError means "try again later".

class OutboxSMS:
    """The embedded default: the SMS stays in the database, where staff read it and copy it."""
    name = "outbox"

    def __init__(self, config: dict):
        pass

    def send(self, to: str, text: str) -> None:
        return None


class HttpSMS:
    """A configurable gateway: SMS_HTTP_URL, _METHOD, _BODY (with {to} and {text}), _USER, _PASSWORD.

    A body that starts with ``{`` or ``[`` is sent as JSON (the values JSON-escaped); any other
    as a form (the values URL-encoded). Placeholders in the URL are URL-encoded. Any 2xx is success.
    """
    name = "http"

    def __init__(self, config: dict):
        self.url = config.get("SMS_HTTP_URL") or ""
        self.method = (config.get("SMS_HTTP_METHOD") or "POST").upper()
        self.body = config.get("SMS_HTTP_BODY") or "to={to}&text={text}"
        self.user = config.get("SMS_HTTP_USER") or ""
        self.password = config.get("SMS_HTTP_PASSWORD") or ""

    @staticmethod
    def _fill(template: str, escape, to: str, text: str) -> str:
        return template.replace("{to}", escape(to)).replace("{text}", escape(text))

    def request(self, to: str, text: str) -> urllib.request.Request:
        url = self._fill(self.url, lambda s: urllib.parse.quote(s, safe=""), to, text)
        data, headers = None, {"User-Agent": "Cabinet"}
        if self.method != "GET":
            if self.body.lstrip().startswith(("{", "[")):
                data = self._fill(self.body, lambda s: json.dumps(s)[1:-1], to, text)
                headers["Content-Type"] = "application/json; charset=utf-8"
            else:
                data = self._fill(self.body, urllib.parse.quote_plus, to, text)
                headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
            data = data.encode("utf-8")
        if self.user:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return urllib.request.Request(url, data=data, headers=headers, method=self.method)

    def send(self, to: str, text: str) -> None:
        if not self.url:
            raise DeliveryError("SMS_HTTP_URL is not set")
        try:
            with urllib.request.urlopen(self.request(to, text), timeout=HTTP_TIMEOUT) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"SMS gateway answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason if isinstance(exc.reason, OSError) else OSError(str(exc.reason))
            raise DeliveryError("SMS gateway unreachable: " + _safe(reason, to)) from None
        except OSError as exc:
            raise DeliveryError("SMS gateway unreachable: " + _safe(exc, to)) from None
        if not 200 <= status < 300:
            raise DeliveryError(f"SMS gateway answered HTTP {status}")


SMS_BACKENDS = {"outbox": OutboxSMS, "http": HttpSMS}


def sms_backend(config: dict):
    return SMS_BACKENDS[config.get("SMS_BACKEND") or "outbox"](config)
