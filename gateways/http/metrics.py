"""Prometheus metrics of the REST API: request count and latency by route template (never the raw
path, so a scan of random URLs adds no series), and the `/metrics` exposition.

The cost per request is one histogram observation and one counter increment (a few microseconds:
prometheus_client's own per-metric lock, nothing else shared). With several gunicorn workers the
values go through prometheus_client's multiprocess files and `/metrics` sums every worker's.
"""

from __future__ import annotations

import time
from pathlib import Path

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY, disable_created_metrics, multiprocess

disable_created_metrics()  # no `_created` twin of every series: Prometheus does not use them
UNMATCHED = "unmatched"  # 404s of any path share one series
METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"))
# From a health probe (sub-millisecond) to a device call that waits its whole 60 s timeout.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter("iotcloud_http_requests", "HTTP requests answered", ("method", "route", "status"))
LATENCY = Histogram("iotcloud_http_request_duration_seconds", "Time from routing to the response",
                    ("method", "route"), buckets=BUCKETS)


class RequestMetrics:
    """Counts each answered request by method, route template and status class, and times it.

    The labelled series are resolved once per (method, route, status class), a bounded set, and kept:
    `labels()` itself costs more than the observation."""

    def __init__(self):
        self._series: dict[tuple[str, str, str], tuple] = {}

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        started = getattr(req.context, "metrics_started", None)
        if started is None:
            return
        method = req.method if req.method in METHODS else "OTHER"  # any other verb is one series
        key = (method, req.uri_template or UNMATCHED, resp.status_code // 100)
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, (LATENCY.labels(method, key[1]).observe,
                                                   REQUESTS.labels(method, key[1], f"{key[2]}xx").inc))
        observe, count = series
        observe(time.perf_counter() - started)
        count()


def exposition(multiprocess_dir: Path | None) -> bytes:
    """The text format of every metric of this process, or of every worker in multiprocess mode."""
    if multiprocess_dir is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
    return generate_latest(registry)


class Metrics:
    """`GET /metrics`. Public like `/healthz`: a scraper has no user token. The numbers say how busy
    the API is and how fast, never who called it; keep the port off the internet, or filter
    `/metrics` in the reverse proxy."""

    public = True
    probe = True  # not held to the per-address bound on public requests: a scraper must always get in

    def __init__(self, multiprocess_dir: Path | None):
        self._dir = multiprocess_dir

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = exposition(self._dir)
        resp.content_type = CONTENT_TYPE_LATEST
        resp.cache_control = ["no-store"]
