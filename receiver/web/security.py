"""Safe answers and a trusted proxy: the API's security headers, and the X-Forwarded-*
headers believed from the proxies named in FORWARDED_ALLOW_IPS only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from ..config import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Every API and callback answer: its type is the one stated, it is never kept by a cache
# on the way (it carries phone numbers, user ids), never framed, never a referrer.
API_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def init_app(app: Flask) -> None:
    """Add the security headers to ``app``'s answers and, outermost, the proxy check
    (call it last: the proxy check wraps whatever WSGI app ``app`` has become)."""
    settings: Settings = app.extensions["umstrack.settings"]

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in API_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.wsgi_app = TrustedProxies(app.wsgi_app, settings.forwarded_allow_ips)  # type: ignore[method-assign]


class TrustedProxies:
    """WSGI middleware: a request from one of ``allowed`` (addresses, networks, or
    ``*`` for any) has its scheme, host, port and client address taken from one proxy's
    X-Forwarded-Proto/-Host/-Port/-For (werkzeug's ProxyFix); from anywhere else, those
    headers are ignored. Nothing is allowed by default."""

    def __init__(self, app: WSGIApplication, allowed: Iterable[str]) -> None:
        self.app = app
        self.proxied = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1)
        allowed = tuple(allowed)
        self.anyone = "*" in allowed
        # Checked when the settings were read (receiver.config).
        self.networks = tuple(ipaddress.ip_network(a, strict=False) for a in allowed if a != "*")

    def trusts(self, address: str | None) -> bool:
        """Whether a request from ``address`` comes through an allowed proxy."""
        if self.anyone:
            return True
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:  # a Unix socket's peer, say
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        app = self.proxied if self.trusts(environ.get("REMOTE_ADDR")) else self.app
        return app(environ, start_response)
