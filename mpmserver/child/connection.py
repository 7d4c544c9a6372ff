"""A client connection and its state machine.

Like event.c's ``CONN_STATE_*`` and h11's ``_state.py``: a connection is in
exactly one state, and ``advance()`` is the only way to change it; a move the
table below does not list raises ``IllegalTransition``. Everything the
server counts about connections (parked, lingering, with a worker) is
derived from these states, never kept beside them.

Ownership moves with the state: in READING_HEAD, READING_BODY, PARKED,
WRITING and LINGERING the listener's event loop owns the connection (a
non-blocking socket once the loop waits on it; the head sent with the
connect is read with MSG_DONTWAIT); in QUEUED it sits in the hand-off; in IN_WORKER one worker thread
owns it (non-blocking socket; its Channel waits up to Timeout). Nobody else
touches it. A socket is made non-blocking once, by whichever side waits on
it first (make_nonblocking).

    READING_HEAD --complete head--> QUEUED --a worker takes it--> IN_WORKER
    READING_HEAD --a body to come--> READING_BODY --all of it (memory or spool)--> QUEUED
    IN_WORKER --keep-alive, nothing buffered--> PARKED --bytes--> READING_HEAD
    IN_WORKER --keep-alive, part of the next head buffered--> READING_HEAD
    READING_HEAD / IN_WORKER --an error response to write--> WRITING
    READING_HEAD --a file from an Alias, written at once, keep-alive--> PARKED
    READING_HEAD --a file from an Alias the socket cannot take at once--> WRITING
    IN_WORKER --the app is done, the socket cannot take the tail yet--> WRITING
    WRITING --tail written, keep-alive--> PARKED / READING_HEAD
    WRITING / READING_HEAD / IN_WORKER / PARKED --close--> LINGERING
    any --abort, timeout, teardown--> CLOSED
"""

from __future__ import annotations

import enum
import socket

from ..http.spoolfile import send_region

# The most one read of a connection takes, in the loop (heads, small
# bodies, the bytes drained while lingering).
RECV_SIZE = 65536


class ConnState(enum.IntEnum):
    READING_HEAD = 0  # the loop reads a request head (CONN_STATE_READ_REQUEST_LINE)
    QUEUED = 1  # a complete, checked head waits in the hand-off for a worker
    IN_WORKER = 2  # a worker runs its requests (CONN_STATE_HANDLER)
    PARKED = 3  # keep-alive: the loop waits for the next request (CONN_STATE_KEEPALIVE)
    WRITING = 4  # the loop finishes writing a response (CONN_STATE_WRITE_COMPLETION)
    LINGERING = 5  # our side is shut; the loop drains the client's last bytes (CONN_STATE_LINGER)
    CLOSED = 6
    READING_BODY = 7  # the loop receives a request body before a worker sees it (RequestBodyBuffer, RequestBodySpool)


READING_HEAD, QUEUED, IN_WORKER, PARKED, WRITING, LINGERING, CLOSED, READING_BODY = ConnState

_NEXT: dict[ConnState, frozenset[ConnState]] = {
    READING_HEAD: frozenset({QUEUED, READING_BODY, WRITING, PARKED, LINGERING, CLOSED}),
    READING_BODY: frozenset({QUEUED, WRITING, CLOSED}),
    QUEUED: frozenset({IN_WORKER, CLOSED}),
    IN_WORKER: frozenset({PARKED, READING_HEAD, WRITING, LINGERING, CLOSED}),
    PARKED: frozenset({READING_HEAD, LINGERING, CLOSED}),
    WRITING: frozenset({PARKED, READING_HEAD, LINGERING, CLOSED}),
    LINGERING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}
# Indexed by state: a tuple lookup is the cheapest check on the request path.
_ALLOWED = tuple(_NEXT[s] for s in ConnState)


class IllegalTransition(RuntimeError):
    """A connection was moved in a way the state machine does not allow: a bug."""


def advance(conn: "Connection", new: ConnState) -> ConnState:
    """Move ``conn`` to ``new``; return the state it leaves. Raises IllegalTransition."""
    old = conn.state
    if new not in _ALLOWED[old]:
        raise IllegalTransition(f"{conn!r}: {old.name} -> {new.name}")
    conn.state = new
    return old


class Connection:
    __slots__ = (
        "sock",
        "fd",
        "client_addr",
        "client_port",
        "server_port",
        "state",
        "buf",
        "requests",
        "must_close",
        "timer",
        "blank_lines",
        "peer_addr",
        "trusted",
        "proxy_pending",
        "wanted",
        "chunks",
        "stage_start",
        "stage_bytes",
        "tail",
        "then",
        "spool",
        "blocking",
        "tls",
    )

    def __init__(self, sock: socket.socket, client_addr: str, client_port: int, server_port: int):
        self.sock = sock
        self.fd = sock.fileno()
        self.client_addr = client_addr
        self.client_port = client_port
        self.server_port = server_port
        self.state = READING_HEAD
        # Bytes received and not yet given to h11; when a worker takes the
        # connection, buf starts with a complete, checked request head; in
        # WRITING, the part of the response still to send.
        self.buf = b""
        self.requests = 0
        # check_head flags (e.g. Content-Length with Transfer-Encoding): answer,
        # then close.
        self.must_close = False
        self.timer = None
        # Empty lines skipped before the current request (RFC 9112 2.2 allows
        # some; endless ones are refused).
        self.blank_lines = 0
        # READING_BODY: the length of buf at which the request is complete; for
        # a chunked body, minus the most that is buffered.
        self.wanted = 0
        # READING_BODY of a chunked body: its framing so far (protocol.ChunkedBody).
        self.chunks = None
        # RequestReadTimeout: when the head (READING_HEAD) or the buffered
        # body (READING_BODY) began to arrive, and its bytes so far.
        self.stage_start = 0.0
        self.stage_bytes = 0
        # Write completion (WRITING after a worker): the rest of a response
        # the worker left to the loop (a spoolfile.OutQueue, whose files the
        # connection owns until it is written or closed), and the outcome to
        # carry out once it is written. stage_start and stage_bytes then time
        # the writing, for the minimum rate.
        self.tail = None
        self.then = None
        # A request body the loop receives into a temporary file
        # (READING_BODY, RequestBodySpool: a spoolfile.BodySpool), until the
        # worker serving the request takes it; closed with the connection.
        self.spool = None
        # RemoteIP (remoteip.py), decided once when the connection opens: the
        # peer that connected (client_addr becomes the client a PROXY header
        # names), whether its RemoteIPHeader is believed, and whether a PROXY
        # header must still come before the first request (read in READING_HEAD).
        self.peer_addr = client_addr
        self.trusted = False
        self.proxy_pending = False
        # Whether the socket may still block: true as accept() leaves it (and
        # for a socket a sibling transferred, whichever it was there). Only
        # make_nonblocking() changes it.
        self.blocking = True
        # TLS (handshake.py): None on a plain connection; once its handshake
        # is done, the StdEnvVars of the connection (modules/tls.std_env_vars),
        # merged into each request's environ.
        self.tls = None

    def __repr__(self) -> str:
        return (f"<Connection {self.client_addr}:{self.client_port} fd={self.fd} "
                f"{self.state.name} requests={self.requests}>")


def make_nonblocking(conn: Connection) -> None:
    """The one owner of the socket's blocking mode: a socket is made
    non-blocking once, by the first of the loop (when it must wait for the
    rest of a request) and a worker (before its first request); the loop
    reads a head sent with the connect with MSG_DONTWAIT instead, so that a
    connection dispatched at once pays one O_NONBLOCK change, the worker's.
    Callers test ``conn.blocking`` first (an attribute read on the
    per-request path instead of a call)."""
    conn.sock.setblocking(False)
    conn.blocking = False


# What the loop counts: QUEUED and IN_WORKER are one bucket, since a worker
# moves a connection from one to the other without telling the loop.
_BUCKET = tuple(QUEUED if s == IN_WORKER else s for s in ConnState)


class ConnectionTable:
    """Every open connection of a child, by state; owned by the loop thread.

    ``move()`` is advance() plus the counts; a worker thread only ever calls
    advance(conn, IN_WORKER), which stays in the same bucket. Parked
    connections are kept oldest first: they are the ones given up when the
    child needs room (MaxOpenConnectionsPerChild).
    """

    __slots__ = ("_counts", "_parked", "_open", "total")

    def __init__(self) -> None:
        self._counts = [0] * len(ConnState)
        self._parked: dict[Connection, None] = {}
        self._open: set[Connection] = set()
        self.total = 0  # open connections; read by other threads (an int read is atomic)

    def add(self, conn: Connection) -> None:
        """A new connection, in READING_HEAD."""
        self._counts[conn.state] += 1
        self._open.add(conn)
        self.total += 1

    def move(self, conn: Connection, new: ConnState) -> None:
        old = advance(conn, new)
        counts = self._counts
        counts[_BUCKET[old]] -= 1
        if old == PARKED:
            del self._parked[conn]
        if new == CLOSED:
            self._open.discard(conn)
            self.total -= 1
            return
        counts[_BUCKET[new]] += 1
        if new == PARKED:
            self._parked[conn] = None

    def count(self, state: ConnState) -> int:
        """Connections in ``state`` (QUEUED counts those with a worker too)."""
        return self._counts[_BUCKET[state]]

    @property
    def parked(self) -> int:
        return len(self._parked)

    def oldest_parked(self) -> Connection | None:
        return next(iter(self._parked), None)

    def parked_connections(self) -> list[Connection]:
        return list(self._parked)

    def connections(self) -> list[Connection]:
        """A copy of every open connection, whatever its state."""
        return list(self._open)

    def __len__(self) -> int:
        return self.total


MSG_MORE = getattr(socket, "MSG_MORE", 0)


def send_head(conn: Connection, head: bytes, file_follows: bool) -> int:
    """Write a response head whose file send_file writes next; return how
    much went. On a plain socket with MSG_MORE, so the head and the file's
    first bytes leave in one segment; any other socket (TLS) takes no flags."""
    sock = conn.sock
    if file_follows and type(sock) is socket.socket:
        return sock.send(head, MSG_MORE)
    return sock.send(head)


def send_file(conn: Connection, fd: int, offset: int, count: int) -> int:
    """Write up to ``count`` bytes of the file ``fd`` from ``offset`` to the
    connection; return how many went (spoolfile.send_region decides how:
    sendfile on a plain socket, reads and sends on a TLS one). Raises what
    the socket raises (BlockingIOError when it has no room)."""
    return send_region(conn.sock, conn.fd, fd, offset, count)


def close_socket(sock: socket.socket, shutdown: bool = True) -> None:
    """Close a client socket. ``shutdown`` first: a close() alone sends no
    FIN while another process holds a copy of the descriptor (a helper the
    app forked); without it, only our descriptor goes (a connection a
    sibling now holds, one that has sent its FIN already)."""
    if shutdown:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        sock.close()
    except OSError:
        pass
