"""Cross-cutting HTTP concerns: request ids and access logs, per-address bounds on public
requests, and Bearer authentication."""

from __future__ import annotations

import logging
import re
import time
import uuid

import falcon

from commands.errors import InvalidToken
from commands.identity.port import IdentityProvider
from gateways.http import compat_v2
from gateways.http.capacity import Busy, ConcurrencyLimit, TooManyConcurrentRequests

log = logging.getLogger("iotcloud.http")
SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
PUBLIC_REQUEST_SECONDS = 1.0  # what a refused caller is told to wait; public requests are short


class RequestContext:
    """Gives each request an id (echoed as X-Request-ID) and writes one JSON access-log line."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        supplied = req.get_header("X-Request-ID") or ""
        req.context.request_id = supplied if SAFE_ID.match(supplied) else uuid.uuid4().hex
        correlation = req.get_header("X-Correlation-ID") or ""
        req.context.correlation_id = correlation if SAFE_ID.match(correlation) else req.context.request_id
        req.context.started = time.perf_counter()
        req.context.principal = None

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        resp.set_header("X-Request-ID", req.context.request_id)
        principal = getattr(req.context, "principal", None)
        log.info("request", extra={
            "request_id": req.context.request_id, "correlation_id": req.context.correlation_id,
            "method": req.method, "path": req.path,
            "status": resp.status_code, "user": principal.username if principal else None,
            "duration_ms": round((time.perf_counter() - req.context.started) * 1000, 2)})


class BearerAuthentication:
    """Resources are private unless they set `public = True`; the caller becomes `req.context.principal`."""

    def __init__(self, identity: IdentityProvider):
        self._identity = identity

    def process_resource(self, req: falcon.Request, resp, resource, params) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        header = req.get_header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("send 'Authorization: Bearer <access_token>' (from POST /v1/auth/login)")
        req.context.principal = self._identity.authenticate(token.strip())


class PublicRequestLimit:
    """Public routes have no user to hold to a share of the threads, so each client address may run
    at most `limit.per_key` of them at once (health probes are exempt: they must always answer).

    Behind a reverse proxy every client has the proxy's address: raise IOTCLOUD_API_PUBLIC_PER_ADDRESS
    there and let the proxy bound each client."""

    def __init__(self, limit: ConcurrencyLimit):
        self._limit = limit

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if resource is None or not getattr(resource, "public", False) or getattr(resource, "probe", False):
            return
        address = req.remote_addr or "-"
        try:
            req.context.public_slot = (address, self._limit.acquire(address, PUBLIC_REQUEST_SECONDS))
        except Busy as busy:
            error = TooManyConcurrentRequests(f"at most {self._limit.per_key} unauthenticated requests per"
                                              " client address at once", retry_after=busy.retry_after)
            if not isinstance(resource, compat_v2.V2Resource):
                raise error from None
            compat_v2.envelope(resp, *compat_v2.v2_error_for(error))  # v2 clients read the NG envelope
            resp.set_header("Retry-After", str(busy.retry_after))
            resp.complete = True

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        slot = getattr(req.context, "public_slot", None)
        if slot is not None:
            self._limit.release(*slot)
