"""The server's own pages (StatusPath, MetricsPath, HealthPath): one handler wrapper.

Each page is a WSGI middleware in front of the app that answers one exact
path itself and passes every other path on at the cost of one string
compare. What the three share lives here: the path check, the method check
(405 with Allow: GET, HEAD, unless the page answers every method), the
client-address check of StatusAllow / MetricsAllow with its per-child cache,
and the small uncacheable response. Each module supplies only its body:
``answer(environ) -> Answer``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

__all__ = ["TEXT", "Answer", "client_allowed", "serve_page"]

TEXT = "text/plain; charset=utf-8"
# Distinct client addresses whose allow decision a child remembers: clients
# are many, the allowed networks few, and the check is a parse and a walk.
ALLOW_CACHE_SIZE = 1024

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Answer(NamedTuple):
    """A page's response: status line, body, Content-Type, extra headers."""
    status: str
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()


def client_allowed(remote_addr: str, networks: Iterable[_Network]) -> bool:
    """StatusAllow / MetricsAllow: is this client address inside one of the networks?

    An IPv4-mapped IPv6 address (::ffff:127.0.0.1, from a dual-stack socket)
    is judged as the IPv4 address it carries, as Apache's Require ip does.
    """
    try:
        addr = ipaddress.ip_address(remote_addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in networks)


def _respond(answer: Answer, start_response: Callable, head: bool) -> list[bytes]:
    # no-store: a cache between the client and us must never serve a stale
    # scoreboard or a health answer from before a drain.
    start_response(answer.status, [("Content-Type", answer.content_type),
                                   ("Content-Length", str(len(answer.body))),
                                   ("Cache-Control", "no-store"), *answer.headers])
    return [] if head else [answer.body]


def _allow_check(allow: Iterable[str] | None) -> Callable[[str], bool] | None:
    """The client check for an allow list (None: everyone), cached per address."""
    if allow is None:
        return None
    networks = tuple(ipaddress.ip_network(n, strict=False) for n in allow)
    cache: dict[str, bool] = {}

    def allowed(remote: str) -> bool:
        ok = cache.get(remote)
        if ok is None:
            ok = client_allowed(remote, networks)
            if len(cache) < ALLOW_CACHE_SIZE:
                cache[remote] = ok
        return ok

    return allowed


def serve_page(app: Callable, path: str, answer: Callable[[dict], Answer], *, what: str,
               allow: Iterable[str] | None = None, directive: str = "",
               any_method: bool = False) -> Callable:
    """Wrap ``app`` so that a request for exactly ``path`` gets ``answer(environ)``.

    ``what`` names the page in the 405 and 403 bodies ("The status page");
    ``allow``: the networks allowed to see it (None: every client), named in
    the 403 by ``directive`` ("StatusAllow"); ``any_method``: every method
    gets the answer (a health check: HAProxy sends OPTIONS), else only GET
    and HEAD, others 405.
    """
    allowed = _allow_check(allow)

    def page(environ: dict, start_response: Callable) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        head = method == "HEAD"
        if not any_method and method != "GET" and not head:
            return _respond(Answer("405 Method Not Allowed", f"{what} answers GET and HEAD only.\n".encode(),
                                   headers=(("Allow", "GET, HEAD"),)), start_response, False)
        if allowed is not None:
            remote = environ.get("REMOTE_ADDR", "")
            if not allowed(remote):
                return _respond(Answer("403 Forbidden", f"{what} is not available to {remote}; "
                                                        f"see {directive}.\n".encode()), start_response, head)
        return _respond(answer(environ), start_response, head)

    def wrapped(environ: dict, start_response: Callable) -> Any:
        if environ["PATH_INFO"] != path:
            return app(environ, start_response)
        return page(environ, start_response)

    return wrapped
