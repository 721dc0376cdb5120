"""Cross-cutting HTTP concerns: request ids and access logs, and Bearer authentication."""

from __future__ import annotations

import logging
import re
import time
import uuid

import falcon

from commands.errors import InvalidToken
from commands.identity.port import IdentityProvider

log = logging.getLogger("iotcloud.http")
SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


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
            "request_id": req.context.request_id, "method": req.method, "path": req.path,
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
