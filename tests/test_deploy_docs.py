"""docs/deploy.md and its example files (docs/deploy/) cannot drift from the code: every
environment variable they name is one Cabinet (or the named program) reads, and the nginx map
that keeps credentials out of the access log strips the addresses the app really makes."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import url_for

from conftest import make_appointment, make_user
from webapp import access
from webapp.models import new_ref

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / "deploy.md", *sorted((ROOT / "docs" / "deploy").iterdir())]
NGINX = (ROOT / "docs" / "deploy" / "nginx.conf").read_text()

# Where Cabinet reads its environment: the web app's settings, the settings the relay worker
# shares with it, the worker process, and the serving configuration (gunicorn).
READERS = ["webapp/config.py", "webapp/netsettings.py", "webapp/relay/__main__.py", "webapp/relay/malloc.py",
           "webapp/serving.py", "webapp/relay/worker.py"]
# Variables the docs name that another program reads, not Cabinet.
OTHER_PROGRAMS = {
    "WEB_CONCURRENCY": "gunicorn: the default number of workers",
    "PORT": "gunicorn: binds 0.0.0.0:$PORT when set (the docs warn against it)",
}
# Upper-case words in the docs that are not environment variables.
NOT_VARIABLES = {"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "MAX_CONTENT_LENGTH", "LISTEN", "NOTIFY", "HTTPS", "HTTP",
                 "TURN", "TLS", "UDP", "TCP", "SNI", "ALPN", "ICE", "STUN", "JSON", "SMS", "SMTP", "CSRF", "HSTS",
                 "PROXY", "HMAC", "RSS", "CPU", "VP8", "SSH", "LAN", "NAT", "VPN", "ES", "SIGTERM", "HUP", "GB",
                 "MiB", "PDF", "HDS", "EU", "DTLS", "SRTP", "OK", "JS", "CSS", "URL", "URLS", "DB", "IP", "ID"}


def named_variables() -> set[str]:
    """``NAME=`` anywhere, and backticked `` `NAME` `` in the page: what an admin would set."""
    names = set()
    for path in DOCS:
        text = path.read_text()
        names |= set(re.findall(r"(?<![\w$-])([A-Z][A-Z0-9_]{2,})=", text))
        if path.suffix == ".md":
            names |= set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", text))
    return names - NOT_VARIABLES


def read_by_cabinet(name: str) -> bool:
    sources = "".join((ROOT / p).read_text() for p in READERS if (ROOT / p).exists())
    return re.search(rf"[\"']{name}[\"']", sources) is not None


def test_the_docs_name_the_settings_an_admin_needs():
    # The extraction itself: it must find the variables the page is about, or the check below checks nothing.
    assert {"SECRET_KEY", "DATABASE_URL", "RELAY_URLS", "RELAY_HOST_ADDRESSES", "ICE_SERVERS", "TRUSTED_PROXIES",
            "RELAY_MAX_CALLS", "WEB_CONCURRENCY", "RELAY_UDP_PORTS"} <= named_variables()


@pytest.mark.parametrize("name", sorted(named_variables()))
def test_every_variable_in_the_docs_is_read(name):
    assert read_by_cabinet(name) or name in OTHER_PROGRAMS, \
        f"{name} is named in docs/deploy.md or docs/deploy/ but nothing reads it"



def nginx_log_map():
    """The token-stripping ``map $request_uri`` of nginx.conf, as a Python function."""
    block = re.search(r"map \$request_uri \$cabinet_loggable_uri \{(.*?)\n\}", NGINX, re.S).group(1)
    pattern, replacement = re.search(r'^\s*"~(.+?)"\s+"(.+?)";', block, re.M).groups()
    # nginx (PCRE) names a group (?<name>...) and uses it as ${name}; Python says (?P<name>...) and \g<name>.
    regex = re.compile(re.sub(r"\(\?<(?=\w)", "(?P<", pattern))
    python_replacement = re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", replacement)
    return lambda uri: regex.sub(python_replacement, uri) if regex.match(uri) else uri


def request_uri(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def test_the_access_log_keeps_no_patient_link(app):
    strip = nginx_log_map()
    appt = make_appointment()
    with app.test_request_context():
        link = access.patient_link_url(appt)
        feed = access.feed_url(make_user("practitioner"))
        booking_code = url_for("booking.code", token=new_ref())
    token = request_uri(link).split("/")[2]
    assert len(token) > 20
    assert strip(request_uri(link)) == "/p/..."
    assert strip(request_uri(link) + "?lang=fr") == "/p/...?lang=fr"
    assert strip(request_uri(feed)) == "/agenda/feed/..."
    assert strip(booking_code) == "/book/code/..."
    # Addresses without a credential are logged as they are.
    for uri in (f"/v/{appt.ref}/live", "/today/", "/static/css/app.css?v=0123abcd", "/login"):
        assert strip(uri) == uri


def test_every_route_with_a_token_in_its_path_is_stripped(app):
    strip = nginx_log_map()
    rules = [r.rule for r in app.url_map.iter_rules() if "<token>" in r.rule]
    assert "/p/<token>" in rules
    for rule in rules:
        uri = rule.replace("<token>", "SECRET-TOKEN-1234")
        assert "SECRET-TOKEN" not in strip(uri), f"{rule} would keep its token in nginx's access log"


def test_the_log_format_uses_only_the_stripped_address():
    log_format = re.search(r"log_format cabinet (.*?);", NGINX, re.S).group(1)
    assert "$cabinet_loggable_uri" in log_format
    for leaky in ("$request ", '$request"', "$request_uri", "$uri", "$args", "$query_string", "$http_referer"):
        assert leaky not in log_format
    assert re.search(r"access_log \S+ cabinet;", NGINX)


def test_nginx_lets_through_what_the_app_accepts(app):
    size = re.search(r"client_max_body_size (\d+)m;", NGINX).group(1)
    assert int(size) * 1024 * 1024 >= app.config["MAX_CONTENT_LENGTH"]
    assert "proxy_read_timeout 3600s" in NGINX and "$http_upgrade" in NGINX


def test_turnserver_conf_has_no_comment_after_a_setting():
    # coturn takes "key=value  # note" as the value "value  # note" and refuses to start.
    settings = [line for line in (ROOT / "docs" / "deploy" / "turnserver.conf").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert "lt-cred-mech" in settings
    assert [line for line in settings if "#" in line] == []
