"""Security headers on every response, and HSTS on the HTTPS listener.

The Content-Security-Policy fits a same-origin single-page app served by this API: scripts, styles,
images, fonts and API calls from this origin only (images also as `data:` URLs), no plugins, no
inline script, and no framing by any page (`frame-ancestors 'none'`, with X-Frame-Options for
older browsers). JSON answers are not rendered, so the policy costs them nothing.
"""

from __future__ import annotations

import ssl

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'"))
ALWAYS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


def arrived_over_tls(env: dict) -> bool:
    """Whether the request came through the HTTPS listener (gunicorn hands the WSGI app its socket);
    never from a client's header, which anyone on the plain listener could send."""
    return isinstance(env.get("gunicorn.socket"), ssl.SSLSocket)


class SecureHeaders:
    def __init__(self, hsts_seconds: int):
        self._hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds > 0 else ""

    def process_request(self, req, resp) -> None:
        if arrived_over_tls(req.env):
            req.env["wsgi.url_scheme"] = "https"

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        for name, value in ALWAYS:
            resp.set_header(name, value)
        # HSTS only over our own TLS: browsers ignore it on plain HTTP (RFC 6797 §8.1), and gunicorn
        # believes a loopback client's X-Forwarded-Proto, which anyone on this host can send. A TLS
        # reverse proxy in front adds its own.
        if self._hsts and arrived_over_tls(req.env):
            resp.set_header("Strict-Transport-Security", self._hsts)
