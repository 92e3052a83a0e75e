"""Bytes on the wire: static files under versioned URLs cached for a year, and gzip.

``url_for("static", filename=...)`` adds ``?v=<hash of the file>``: a browser keeps such a file
for a year without asking again (``immutable``), and a release that changes the file changes its
address. A request without the version (an ES module's relative import) or with an old one is
answered ``no-cache``: the browser revalidates it (ETag) on every load.

Text responses are gzipped when the browser accepts it, so the patient's first load is small
whether or not a proxy compresses (docs/deploy.md). gzip is in the standard library; brotli would
need a compiled package for a few percent more, and nginx can add it in front (it does not
compress again what the app already did).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import threading

from flask import request

IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = {"text/html", "text/css", "text/javascript", "text/plain", "application/javascript",
                "application/json", "application/manifest+json", "image/svg+xml"}
# Below a packet, gzip's header and the CPU buy nothing.
MIN_SIZE = 500

_versions: dict[str, tuple[tuple[int, int], str]] = {}
_gzipped: dict[tuple[str, str], bytes] = {}
_lock = threading.Lock()


def file_version(static_folder: str, filename: str) -> str | None:
    """A short hash of the static file's content (None when there is no such file).

    Kept per file and read again only when its size or modification time changes."""
    path = os.path.join(static_folder, filename)
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    known = _versions.get(path)
    if known and known[0] == key:
        return known[1]
    with open(path, "rb") as f:
        version = hashlib.sha256(f.read()).hexdigest()[:12]
    with _lock:
        _versions[path] = (key, version)
    return version


def static_url_path(static_folder: str, filename: str) -> str:
    """``/static/<filename>?v=<version>``, for lists built without a request (the service worker's)."""
    version = file_version(static_folder, filename)
    return f"/static/{filename}" + (f"?v={version}" if version else "")


def init_app(app) -> None:
    """Register first: after_request functions run last-registered first, so gzip comes last."""

    @app.after_request
    def compress(response):
        return gzip_response(response)

    @app.after_request
    def static_caching(response):
        if request.endpoint == "static" and response.status_code in (200, 304):
            asked = request.args.get("v")
            current = file_version(app.static_folder, request.view_args.get("filename", ""))
            response.headers["Cache-Control"] = IMMUTABLE if asked and asked == current else "no-cache"
            response.expires = None
        return response

    @app.url_defaults
    def versioned_static(endpoint, values):
        if endpoint == "static" and "v" not in values and "filename" in values:
            version = file_version(app.static_folder, values["filename"])
            if version:
                values["v"] = version


def gzip_response(response):
    """The response gzipped, when the browser accepts it and it is text worth compressing."""
    if response.mimetype not in COMPRESSIBLE:
        return response
    response.vary.add("Accept-Encoding")
    if (response.status_code != 200 or response.is_streamed and not response.direct_passthrough
            or "Content-Encoding" in response.headers
            or request.headers.get("Upgrade", "").lower() == "websocket"
            or not request.accept_encodings["gzip"]):
        return response
    static_key = None
    if request.endpoint == "static":
        static_key = (request.view_args.get("filename", ""), response.get_etag()[0] or "")
    if response.direct_passthrough:   # a file from send_file: read it whole (static files are small)
        response.direct_passthrough = False
    source = response.response
    body = _gzipped.get(static_key) if static_key else None
    if body is None:
        data = response.get_data()
    if hasattr(source, "close"):
        source.close()                # the open file: read, or not needed (its gzip is known)
    if body is None:
        if len(data) < MIN_SIZE:
            return response
        body = gzip.compress(data, compresslevel=6, mtime=0)
        if static_key and static_key[1]:
            with _lock:
                _gzipped[static_key] = body
    response.set_data(body)
    response.headers["Content-Encoding"] = "gzip"
    response.headers.pop("Accept-Ranges", None)     # ranges would count the compressed bytes
    etag, weak = response.get_etag()
    if etag and not weak:
        # Another representation than the raw file's; If-None-Match compares weakly, so 304s still work.
        response.set_etag(etag, weak=True)
    return response
