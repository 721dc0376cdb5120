"""The web app's built files (webapp/dist), served at `/` of the API's origin.

Only files found in the build directory when the API starts are served (a fixed table: no path from
a request ever reaches the file system, so no traversal). Hashed assets under /assets/ are cached for
a year as immutable; everything else is revalidated (ETag). A `.gz` sibling written by the build is
sent to clients that accept gzip. The single-page app's own routes all live under `/app/`, where
any unknown path answers index.html (the SPA fallback); so the fallback can never shadow an API
route, including the libpyiotcloud v2 `/devices` and `/user`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import falcon

log = logging.getLogger("iotcloud.http")
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "webapp" / "dist"
APP_PREFIX = "/app"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".json": "application/json", ".webmanifest": "application/manifest+json",
         ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8"}
COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".json", ".webmanifest", ".txt"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    content_type: str
    cache_control: str
    etag: str


def load(directory: Path) -> dict[str, StaticFile]:
    """URL path -> file, for every servable file of the build (read once: the build is small)."""
    files: dict[str, StaticFile] = {}
    if not (directory / "index.html").is_file():
        return files
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.suffix not in TYPES or path.name == "bundle-size.json":  # a build report
            continue
        relative = path.relative_to(directory).as_posix()
        body = path.read_bytes()
        gz = path.with_name(path.name + ".gz")
        files["/" + relative] = StaticFile(
            body, gz.read_bytes() if gz.is_file() and path.suffix in COMPRESSIBLE else None, TYPES[path.suffix],
            IMMUTABLE if relative.startswith("assets/") else REVALIDATE,
            '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return files


class WebApp:
    """A falcon sink for GET/HEAD of `/`, `/app/...` and the build's files; everything else is not its."""

    public = True

    def __init__(self, directory: Path = DEFAULT_DIR):
        self._files = load(directory)
        if not self._files:
            log.warning("the web app is not built (%s has no index.html): run `make run`", directory)

    @property
    def paths(self) -> list[str]:
        return list(self._files)

    def __call__(self, req: falcon.Request, resp: falcon.Response, **_) -> None:
        if req.method not in ("GET", "HEAD"):
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        path = req.path
        if path == "/" or path == APP_PREFIX or path.startswith(APP_PREFIX + "/"):
            path = "/index.html"
        found = self._files.get(path)
        if found is None:
            if path == "/index.html":
                raise falcon.HTTPServiceUnavailable(description="the web app is not built: run `make run`")
            raise falcon.HTTPNotFound(description=f"no such file: {req.path}")
        resp.content_type = found.content_type
        resp.cache_control = [found.cache_control]
        resp.etag = found.etag
        resp.vary = ["Accept-Encoding"] if found.gzipped else []
        resp.set_header("X-Content-Type-Options", "nosniff")
        if req.get_header("If-None-Match") == found.etag:
            resp.status = falcon.HTTP_304
            return
        if found.gzipped and "gzip" in (req.get_header("Accept-Encoding") or "").lower():
            resp.set_header("Content-Encoding", "gzip")
            resp.data = found.gzipped
        else:
            resp.data = found.body


def install(app: falcon.App, webapp: WebApp) -> None:
    """Routes win over sinks in falcon, and the sink takes only `/`, `/app/...` and the build's files."""
    exact = [p for p in webapp.paths if not p.startswith("/assets/")] + ["/"]
    pattern = "^(?:" + "|".join(re.escape(p) + "$" for p in exact) + "|/assets/|" + APP_PREFIX + "(?:/|$))"
    app.add_sink(webapp, pattern)

