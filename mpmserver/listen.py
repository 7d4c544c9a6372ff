"""The listening sockets: the owner of every Listen address.

The master binds them before the first fork (as root, so ports below 1024
work) and every child inherits them; a restart rebinds only what changed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

Address = tuple[str, int]


def bind_listeners(cfg: Any, existing: dict[Address, socket.socket] | None = None
                   ) -> dict[Address, socket.socket]:
    """Bind every Listen address, reusing the sockets of ``existing`` already
    bound to one (so a restart drops no queued connection) and closing the
    others.  On failure nothing new stays open and ``existing`` is untouched."""
    unused = dict(existing or {})
    out: dict[Address, socket.socket] = {}
    new: list[socket.socket] = []
    for host, port in cfg.listen:
        key = (host, port)
        if key in unused and port != 0:  # port 0 asks for a new port each time
            out[key] = unused.pop(key)
            continue
        try:
            out[key] = _bind(host, port, cfg.listen_backlog)
        except OSError:
            close_listeners(new)  # the reused ones still serve: the caller keeps them
            raise
        new.append(out[key])
    close_listeners(unused.values())
    return out


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"could not bind to address {host_port(host, port)}: "
                                 f"{exc.strerror}") from None
    # Children get the sockets by fork; nothing they exec may keep them.
    sock.set_inheritable(False)
    return sock


def close_listeners(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(addr: tuple) -> str:
    """The http:// URL of a bound address (for the start-up notice)."""
    return f"http://{host_port(addr[0], addr[1])}"
