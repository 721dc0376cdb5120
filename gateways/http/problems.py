"""RFC 9457 problem details: every error leaves the API as `application/problem+json`."""

from __future__ import annotations

import json
import logging

import falcon

from commands.errors import DomainError, TooManyAttempts

log = logging.getLogger("iotcloud.http")
PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"

# Problem types raised by the HTTP layer itself (domain ones come from commands.errors).
HTTP_PROBLEMS = {
    400: ("bad-request", "The request is malformed"),
    401: ("invalid-token", "The token is missing, invalid, expired or revoked"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "No such resource"),
    405: ("method-not-allowed", "This method is not allowed on this resource"),
    406: ("not-acceptable", "No acceptable representation"),
    411: ("length-required", "A Content-Length is required"),
    413: ("payload-too-large", "The request body is too large"),
    415: ("unsupported-media-type", "The body must be application/json"),
    429: ("too-many-attempts", "Too many requests"),
    500: ("internal-error", "Unexpected error; it has been logged"),
    503: ("unavailable", "A dependency is unavailable; retry later"),
    504: ("timeout", "A dependency did not answer in time"),
}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def _write(req: falcon.Request, resp: falcon.Response, status: int, slug: str, title: str, detail: str,
           extensions: dict | None = None) -> None:
    if getattr(req.context, "v2_envelope", False):
        # libpyiotcloud clients read every error of a v2 route, even one falcon raises, as NG
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"status": "NG", "message": title})
        return
    body = {"type": problem_type(slug), "title": title, "status": status, "detail": detail,
            "instance": req.path}
    request_id = getattr(req.context, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extensions or {})
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = PROBLEM_JSON
    resp.text = json.dumps(body)


def handle_domain_error(req, resp, error: DomainError, params) -> None:
    if isinstance(error, TooManyAttempts):
        resp.set_header("Retry-After", str(error.retry_after))
    if error.status == 401:
        resp.set_header("WWW-Authenticate", 'Bearer realm="iotcloud"')
    _write(req, resp, error.status, error.problem, error.title, error.detail, error.extensions)


def handle_http_error(req, resp, error: falcon.HTTPError, params) -> None:
    status = error.status_code
    slug, title = HTTP_PROBLEMS.get(status, ("http-error", error.title or "HTTP error"))
    slug = getattr(error, "problem", None) or slug
    if status == 401:
        resp.set_header("WWW-Authenticate", 'Bearer realm="iotcloud"')
    for name, value in (error.headers or {}).items():
        resp.set_header(name, value)
    _write(req, resp, status, slug, title, error.description or error.title or title)


def _outage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a store is down or restarting (not a bug): the caller may retry."""
    from eventsourcing.persistence import InterfaceError, OperationalError
    from pymongo.errors import ConnectionFailure
    errors: list[type[BaseException]] = [InterfaceError, OperationalError, ConnectionFailure]
    try:
        import psycopg
        import psycopg_pool
        errors += [psycopg.OperationalError, psycopg_pool.PoolTimeout]
    except ImportError:  # PostgreSQL support is optional
        pass
    return tuple(errors)


OUTAGE_ERRORS = _outage_errors()


def handle_unexpected(req, resp, error: Exception, params) -> None:
    if isinstance(error, falcon.HTTPError):
        return handle_http_error(req, resp, error, params)
    if isinstance(error, OUTAGE_ERRORS):
        log.warning("a store is unavailable: %s", type(error).__name__,
                    extra={"request_id": getattr(req.context, "request_id", None)})
        resp.set_header("Retry-After", "1")
        slug, title = HTTP_PROBLEMS[503]
        return _write(req, resp, 503, slug, title, "A store the platform depends on is unavailable; retry shortly.")
    log.exception("unhandled error", extra={"request_id": getattr(req.context, "request_id", None)})
    _write(req, resp, 500, "internal-error", "Unexpected error; it has been logged",
           "The server failed to handle this request. Quote the request_id when reporting it.")


def catalogue() -> dict[str, dict]:
    """Every problem type this API can answer with, for `/problems/{slug}` and the docs."""
    entries = {slug: {"title": title} for slug, title in HTTP_PROBLEMS.values()}
    for error in _all_subclasses(DomainError):
        entries[error.problem] = {"title": error.title, "status": error.status}
    return dict(sorted(entries.items()))


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def install(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(DomainError, handle_domain_error)
