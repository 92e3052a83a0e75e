"""Settings from the environment (and an optional ``.env``), checked at start-up.

Every setting has an embedded default, so a bare ``flask run`` works. A value
that cannot be read stops the start with a message naming the variable,
instead of failing later in the middle of a visit.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

from .netsettings import SettingError, parse_host_addresses, parse_ice_servers
from .private_files import create_once


class ConfigError(ValueError):
    """A setting from the environment that cannot be used."""


def _int(env, name, default, low, high):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _bool(env, name, default):
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _list(env, name):
    return [part.strip() for part in (env.get(name) or "").split(",") if part.strip()]


def _network(env, parse, name):
    """RELAY_HOST_ADDRESSES or ICE_SERVERS, read as the worker process reads them."""
    try:
        return parse(env.get(name) or "")
    except SettingError as exc:
        raise ConfigError(str(exc)) from None


SMS_BACKENDS = ("outbox", "http")
SMS_HTTP_METHODS = ("GET", "POST", "PUT")


def _sms_http(env) -> dict:
    """The SMS gateway settings; with SMS_BACKEND=http, a usable URL is required."""
    backend = env.get("SMS_BACKEND") or "outbox"
    if backend not in SMS_BACKENDS:
        raise ConfigError(f"SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}, not {backend!r}")
    url = (env.get("SMS_HTTP_URL") or "").strip()
    if backend == "http" and not url:
        raise ConfigError("SMS_HTTP_URL must be set when SMS_BACKEND is http")
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"SMS_HTTP_URL must start with http:// or https://, not {url!r}")
    method = (env.get("SMS_HTTP_METHOD") or "POST").strip().upper()
    if method not in SMS_HTTP_METHODS:
        raise ConfigError(f"SMS_HTTP_METHOD must be one of {', '.join(SMS_HTTP_METHODS)}, not {method!r}")
    body = env.get("SMS_HTTP_BODY") or "to={to}&text={text}"
    if backend == "http" and "{text}" not in body + url:
        raise ConfigError("SMS_HTTP_BODY (or SMS_HTTP_URL) must contain {text}")
    return {"SMS_HTTP_URL": url, "SMS_HTTP_METHOD": method, "SMS_HTTP_BODY": body,
            "SMS_HTTP_USER": env.get("SMS_HTTP_USER") or "", "SMS_HTTP_PASSWORD": env.get("SMS_HTTP_PASSWORD") or ""}


def secret_key(instance_path: Path) -> str:
    """The key in the instance folder, made on first run so sessions survive restarts."""
    path = instance_path / "secret_key"
    if not path.exists():
        create_once(path, secrets.token_urlsafe(48).encode())     # or another process made it first
    return path.read_text().strip()


def from_environment(instance_path: Path, env=None) -> dict:
    """The app's settings, read from ``env`` (default: the process environment and .env)."""
    if env is None:
        load_dotenv(os.path.join(os.getcwd(), ".env"))
        env = os.environ
    public_url = (env.get("PUBLIC_URL") or "").rstrip("/")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_URL must start with http:// or https://, not {public_url!r}")
    locale = env.get("DEFAULT_LOCALE") or "fr"
    return {
        "SECRET_KEY": env.get("SECRET_KEY") or secret_key(instance_path),
        "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'cabinet.sqlite3'}",
        "PUBLIC_URL": public_url,
        "SESSION_COOKIE_SECURE": public_url.startswith("https://"),
        "SMTP_HOST": env.get("SMTP_HOST") or "",
        "SMTP_PORT": _int(env, "SMTP_PORT", 25, 1, 65535),
        "SMTP_USER": env.get("SMTP_USER") or "",
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or "",
        "SMTP_TLS": _bool(env, "SMTP_TLS", False),
        "MAIL_FROM": env.get("MAIL_FROM") or "cabinet@localhost",
        "SMS_BACKEND": env.get("SMS_BACKEND") or "outbox",
        **_sms_http(env),
        "NOTIFY_SENDER": _bool(env, "NOTIFY_SENDER", True),
        "RELAY_URLS": _list(env, "RELAY_URLS"),
        "ICE_SERVERS": _network(env, parse_ice_servers, "ICE_SERVERS"),
        "RELAY_HOST_ADDRESSES": _network(env, parse_host_addresses, "RELAY_HOST_ADDRESSES") or ["127.0.0.1"],
        # Calls the embedded relay takes at most (0: no limit); a worker process reads it itself.
        "RELAY_MAX_CALLS": _int(env, "RELAY_MAX_CALLS", 0, 0, 10000),
        "DOCUMENT_KEY": env.get("DOCUMENT_KEY") or "",
        "DEFAULT_LOCALE": locale,
        "LINK_OPENS_MINUTES_BEFORE": _int(env, "LINK_OPENS_MINUTES_BEFORE", 15, 0, 24 * 60),
        "LINK_CLOSES_MINUTES_AFTER": _int(env, "LINK_CLOSES_MINUTES_AFTER", 60, 0, 24 * 60),
        "PATIENT_SPACE_DAYS": _int(env, "PATIENT_SPACE_DAYS", 15, 1, 365),
        # Retention (flask purge), after French guidance: medical records 20 years after the last
        # visit, audit trail 1 year, the texts of messages sent 30 days.
        "RETENTION_RECORDS_YEARS": _int(env, "RETENTION_RECORDS_YEARS", 20, 1, 100),
        "RETENTION_AUDIT_DAYS": _int(env, "RETENTION_AUDIT_DAYS", 365, 1, 36500),
        "RETENTION_MESSAGE_BODY_DAYS": _int(env, "RETENTION_MESSAGE_BODY_DAYS", 30, 1, 36500),
        "SESSION_IDLE_MINUTES": _int(env, "SESSION_IDLE_MINUTES", 30, 1, 24 * 60),
        "SESSION_MAX_HOURS": _int(env, "SESSION_MAX_HOURS", 12, 1, 7 * 24),
        # How many reverse proxies (nginx: 1) set X-Forwarded-For/-Proto in front of the app: the
        # audit trail and the rate limits then see the client's address, not the proxy's.
        "TRUSTED_PROXIES": _int(env, "TRUSTED_PROXIES", 0, 0, 5),
    }
