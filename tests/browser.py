"""Real headless Chromium (Debian's package) driven by Playwright, and a live server for it."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
# Chromium reads only the last --disable-features, and Playwright passes its own list before
# ours: without repeating it, ours would switch those features back on. Among them "AimEnabled":
# with it on, the hidden browser window keeps building its AI-mode omnibox popup, which took a
# third of a core away from the pages under test. (Playwright 1.65's list, requirements-test.txt.)
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding",
    "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect", "OptimizationHints",
    "NetworkTimeServiceQuerying", "AimEnabled", "PreconnectToSearch",
)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    # WebRTC on loopback: real addresses in candidates (no mDNS names), and no name resolution outside.
    "--disable-features=" + ",".join(("WebRtcHideLocalIpsWithMdns",) + PLAYWRIGHT_DISABLED_FEATURES),
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@contextmanager
def live_server(app):
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@contextmanager
def chromium():
    """A browser; each test opens its own contexts (one per person)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# The authenticator app of practitioners whom browser tests sign in through the real login form.
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def sign_in_with_code(page, url, email, password):
    """The real login form, then the second factor's code from the app set up with TOTP_SECRET."""
    import pyotp    # only the few tests that sign in through the form need it
    page.goto(f"{url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/login/code")
    page.fill("#code", pyotp.TOTP(TOTP_SECRET).now())
    page.click("button[type=submit]")


def until_true(page, expression: str, timeout: float = 10.0, every: float = 0.2) -> None:
    """Evaluate ``expression`` (a promise is awaited) until it is truthy. Not wait_for_function:
    between its first try and the next, Playwright evaluates the predicate with eval, which the
    pages' CSP forbids (an EvalError whenever the first try is falsy)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(every * 1000)

