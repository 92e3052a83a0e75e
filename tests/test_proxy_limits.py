"""Rate limits keyed on the real client behind TRUSTED_PROXIES reverse proxies, and per account."""
from __future__ import annotations

import pytest

from conftest import make_app, make_practice, make_user, text_of


def limited_app(tmp_path, proxies):
    app = make_app(tmp_path, RATELIMIT_ENABLED=True, ENV={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite3'}", "SECRET_KEY": "test-secret",
        "PUBLIC_URL": "https://cabinet.test", "TRUSTED_PROXIES": str(proxies)})
    make_practice()
    return app


def failures(client, forwarded_for, email, n):
    return [client.post("/login", data={"email": email, "password": "nope"},
                        headers={"X-Forwarded-For": forwarded_for}).status_code for _ in range(n)]


def test_behind_one_proxy_two_clients_are_limited_separately(tmp_path):
    app = limited_app(tmp_path, 1)
    client = app.test_client()          # every request comes from the proxy's own address
    first = failures(client, "203.0.113.1", "a@cabinet.example.org", 11)
    assert first[:10] == [401] * 10 and first[-1] == 429
    # Another person behind the same proxy is not locked out by the first one's failures.
    assert failures(client, "203.0.113.2", "b@cabinet.example.org", 1) == [401]


def test_without_trusted_proxies_x_forwarded_for_is_ignored(tmp_path):
    app = limited_app(tmp_path, 0)
    client = app.test_client()
    failures(client, "203.0.113.1", "a@cabinet.example.org", 10)
    # A forged header does not buy a new quota: the limit is on the connection's address.
    assert failures(client, "203.0.113.2", "b@cabinet.example.org", 1) == [429]


def test_a_guesser_on_many_addresses_meets_the_accounts_limit(tmp_path):
    app = limited_app(tmp_path, 1)
    make_user("secretary", email="known@cabinet.example.org")
    client = app.test_client()
    codes = [failures(client, f"198.51.100.{n}", "known@cabinet.example.org", 1)[0] for n in range(11)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429
    # The same answer for an account that does not exist: the limit reveals nothing.
    codes = [failures(client, f"192.0.2.{n}", "nobody@cabinet.example.org", 1)[0] for n in range(11)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429
    assert "Too many attempts" in text_of(client.post("/login", data={"email": "nobody@cabinet.example.org"},
                                                      headers={"X-Forwarded-For": "192.0.2.99"}))


@pytest.mark.parametrize("value", ["-1", "x", "9"])
def test_trusted_proxies_must_be_a_small_number(tmp_path, value):
    from webapp.config import ConfigError, from_environment
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        from_environment(tmp_path, {"SECRET_KEY": "k", "TRUSTED_PROXIES": value})
