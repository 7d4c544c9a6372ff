"""A client connection: the object handed between the listener and the workers.

Ownership moves with it: while the listener holds a connection its socket is
non-blocking and watched by the event loop; while a worker holds it the socket
has the Timeout and the worker does blocking I/O. Nobody else touches it.
"""

from __future__ import annotations

import socket


class Connection:
    __slots__ = (
        "sock",
        "fd",
        "client_addr",
        "client_port",
        "server_port",
        "buf",
        "requests",
        "must_close",
        "timer",
        "parked",
        "blank_lines",
    )

    def __init__(self, sock: socket.socket, client_addr: str, client_port: int, server_port: int):
        self.sock = sock
        self.fd = sock.fileno()
        self.client_addr = client_addr
        self.client_port = client_port
        self.server_port = server_port
        # Bytes received and not yet given to h11; when a worker takes the
        # connection, buf starts with a complete, checked request head.
        self.buf = b""
        self.requests = 0
        # check_head flags (e.g. Content-Length with Transfer-Encoding): answer,
        # then close.
        self.must_close = False
        self.timer = None
        self.parked = False
        # Empty lines skipped before the current request (RFC 9112 2.2 allows
        # some; endless ones are refused).
        self.blank_lines = 0

    def __repr__(self) -> str:
        return f"<Connection {self.client_addr}:{self.client_port} fd={self.fd} requests={self.requests}>"
