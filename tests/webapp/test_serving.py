"""How the API serves the web app (types, caching, gzip, the SPA fallback that never shadows an API
route), the JavaScript budget, and the live device list's bounded long poll."""

from __future__ import annotations

import gzip
import json
import queue
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "webapp" / "dist"
JS_BUDGET = 200 * 1024


def fetch(base_url: str, path: str, method: str = "GET", headers: dict | None = None):
    request = urllib.request.Request(base_url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_the_javascript_shipped_is_within_200_kib_gzipped():
    scripts = sorted((DIST / "assets").glob("*.js"))
    assert scripts, "no built JavaScript: run make webapp"
    total = sum(len(gzip.compress(path.read_bytes(), 9)) for path in scripts)
    assert total <= JS_BUDGET, f"{total} bytes of gzipped JavaScript"
    assert json.loads((DIST / "bundle-size.json").read_text())["js_gzip_bytes"] <= JS_BUDGET


def test_the_app_has_no_inline_script_or_style_and_loads_nothing_from_elsewhere():
    index = (DIST / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", index), "inline script in index.html"
    assert "<style" not in index and " style=" not in index
    for path in [DIST / "index.html", *(DIST / "assets").glob("*")]:
        if path.suffix in (".js", ".css", ".html"):
            text = path.read_text()
            assert not re.search(r"https?://(?!www\.w3\.org/)", text.replace("http://127.0.0.1", "")), path.name
            assert "eval(" not in text and "new Function" not in text, path.name


def test_pages_assets_caching_and_the_fallback(base_url):
    status, headers, body = fetch(base_url, "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b'id="app"' in body
    assert headers["cache-control"] == "no-cache" and headers["x-content-type-options"] == "nosniff"
    script = re.search(rb'src="(/assets/[^"]+\.js)"', body).group(1).decode()
    status, headers, js = fetch(base_url, script, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(js) == (DIST / script.lstrip("/")).read_bytes()
    status, headers, plain = fetch(base_url, script)
    assert "content-encoding" not in headers and plain == gzip.decompress(js)
    etag = headers["etag"]
    assert fetch(base_url, script, headers={"If-None-Match": etag})[0] == 304
    assert fetch(base_url, "/favicon.svg")[1]["content-type"] == "image/svg+xml"
    for page in ("/app", "/app/devices", "/app/devices/kitchen/credentials", "/app/no/such/page"):
        status, headers, html = fetch(base_url, page)
        assert status == 200 and html == body, page  # the SPA decides
    assert fetch(base_url, "/app", method="POST")[0] == 405


def test_the_fallback_never_shadows_an_api_route(base_url):
    for path, status in (("/devices", 400), ("/user", 400), ("/v1/devices", 401), ("/openapi.json", 200),
                         ("/healthz", 200), ("/problems", 200), ("/nope", 404), ("/assets/nope.js", 404),
                         ("/assets/../../pyproject.toml", 404), ("/index.html/..", 404)):
        got, headers, body = fetch(base_url, path)
        assert got == status, (path, got)
        assert not headers["content-type"].startswith("text/html"), path
    document = json.loads(fetch(base_url, "/openapi.json")[2])
    assert not any(path.startswith("/app") or path.startswith("/assets") for path in document["paths"])


def test_the_long_poll_answers_a_change_at_once_and_is_bounded(platform, tmp_path):
    user = platform.user()
    status, first = user("GET", "/v1/devices/_changes")
    assert status == 200 and first["changed"] is False and first["retry_after"] == 0
    version = first["version"]

    per_user = 8  # a quarter of the API's 32 threads: the bound device calls that wait share
    answers: queue.Queue = queue.Queue()

    def poll():
        answers.put((time.monotonic(), user("GET", f"/v1/devices/_changes?since={version}&wait=20")[1]))

    with ThreadPoolExecutor(per_user + 1) as pool:
        for _ in range(per_user + 1):  # one more than the share: it is told at once to come back later
            pool.submit(poll)
        _, refused = answers.get(timeout=30)
        assert refused["retry_after"] > 0 and refused["changed"] is False and refused["version"] == version
        registered = time.monotonic()
        user.device(tmp_path, "fresh")
    held = [answers.get_nowait() for _ in range(per_user)]
    for answered, answer in held:
        assert answer["changed"] is True and answer["version"] != version
        assert answered - registered < 5, "a poll waited past the change"
    assert user("GET", "/v1/devices/_changes?wait=21")[0] == 400
