"""After a worker, in the listener's loop: write completion, the server's
own responses, lingering close and the close.

Apache's CONN_STATE_WRITE_COMPLETION and CONN_STATE_LINGER. The tail of a
response the socket could not take when the app was done (its queue:
bytes in memory, a temporary file, the rest of a file by sendfile) is
written here, bounded by Timeout and by
RequestReadTimeout's body rate; the error responses the server decides on
are written here (the one writer of them) and access-logged once written,
with the bytes that went out; a connection that is done is drained for
LINGER_SECONDS so the client reads our last response instead of a reset.
It uses the loop core's table, timers and watches (core.py) and, for a
keep-alive connection whose tail it wrote, keep-alive parking (parking.py).

Everything here runs in the loop thread.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time
from typing import Any

from ...http.errors import RequestError, error_response
from ...http.framing import SERVER_HEADER, http_date
from ...http.outcome import KEEP, FileTail, Outcome
from ...http.spoolfile import OutQueue
from ...logs import AccessRecord
from ...modules import reqtimeout
from ...scoreboard import response_cell
from ..connection import CLOSED, LINGERING, RECV_SIZE, WRITING, Connection, close_socket
from .core import LoopCore, Room, Rooms

__all__ = ["Completion", "LINGER_SECONDS"]

# How long a closing connection is drained so the client reads our response
# before the kernel would answer its late bytes with a reset (Apache: 2 s).
LINGER_SECONDS = 2.0

class Completion(Room):
    def __init__(self, core: LoopCore, access_log: Any) -> None:
        super().__init__(core)
        config = core.config
        self.loop = core.loop
        self.config = config
        self.read_timeouts = config.request_read_timeout
        self.error_log = core.error_log
        self.access_log = access_log
        # Responses being written with their access records (the server's
        # error responses, and files served from an Alias) and their sizes:
        # logged once written (or cut short), with the bytes that went out.
        self._unlogged: dict[Connection, tuple[AccessRecord, int]] = {}
        self._closed = core.closed
        # The listener's row of responses by status code in the scoreboard.
        self._codes = core.record.response_codes

    def bind(self, rooms: Rooms) -> None:
        self._keep = rooms.parking.keep

    def complete_write(self, conn: Connection, outcome: Outcome, tail: OutQueue | bytes | FileTail,
                       record: AccessRecord | None = None) -> None:
        """The worker (or the static room) left the rest of a response the
        socket could not take (Apache's CONN_STATE_WRITE_COMPLETION): a
        worker's ``tail`` is what the app produced faster than the client
        read (response.Channel's queue: memory, a temporary file, the rest
        of a file_wrapper's file); the static room's, bytes or a FileTail.
        Write it here, then carry out ``outcome``. The writer stays
        registered until the tail is written (level-triggered: it fires
        whenever the socket has room again). ``record``: the response's
        access record, logged here once the tail is written or cut short."""
        self._move(conn, WRITING)
        if record is not None and self.access_log is not None:
            self._unlogged[conn] = (record, record.bytes_out)
        conn.tail = tail if type(tail) is OutQueue else _as_queue(tail)
        conn.then = outcome
        conn.stage_start = self._time()
        # The worker's bytes still in the kernel's send queue count as the
        # loop's: the rate is of what the client reads from now on (else a
        # slow reader draining a send queue of several MB would look idle).
        conn.stage_bytes = _unsent(conn)
        self._publish()
        self._set_write_timer(conn, 0)
        self.loop.add_writer(conn.fd, self._on_tail_writable, conn)

    def _set_write_timer(self, conn: Connection, taken: int) -> None:
        """Timeout bounds each wait for the client to read; the whole tail
        must also be read at RequestReadTimeout's body MinRate (Apache has no
        write-side rate; reading and writing share the one budget here).
        ``taken``: what the client had read at the last look."""
        now = self._time()
        until = min(now + self.config.timeout, reqtimeout.deadline(
            self.read_timeouts.body, conn.stage_start, max(0, taken)))
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = self.loop.call_later(max(0.0, until - now), self._on_write_timeout, conn, taken)

    def _on_tail_writable(self, conn: Connection) -> None:
        tail = conn.tail
        try:
            n = tail.send_to(conn.sock)
        except OSError:
            self.close(conn)
            return
        conn.stage_bytes += n
        if not tail.empty:
            # The timer is not moved here: it looks at what the client took.
            return
        then = conn.then
        if conn in self._unlogged:
            self._log_written(conn, 0)
        self._drop_tail(conn)
        self.loop.remove_writer(conn.fd)
        if then == KEEP:
            self._keep(conn)
            self._publish()  # _keep publishes only when it parks
        else:
            self.linger(conn)

    def _on_write_timeout(self, conn: Connection, taken_before: int) -> None:
        """A writable event comes only once the kernel's send buffer (several
        MB, autotuned) has drained by half, which a slow but steady reader
        can take longer than Timeout to do: what the client read meanwhile
        is measured from the bytes still unsent in the kernel instead."""
        conn.timer = None
        taken = _client_took(conn)
        if taken > taken_before and self._time() < reqtimeout.deadline(
                self.read_timeouts.body, conn.stage_start, max(0, taken)):
            self._set_write_timer(conn, taken)
            return
        if self.error_log.enabled("info"):
            self.error_log.info(f"client {conn.client_addr}: response not read within Timeout or at "
                                "RequestReadTimeout's body MinRate; connection closed")
        self.close(conn)

    @staticmethod
    def _drop_tail(conn: Connection) -> None:
        """The tail is written, or never will be: its files closed, its bytes given back."""
        tail = conn.tail
        conn.tail = conn.then = None
        tail.close()

    # -- the server's own responses, lingering close, the close ----------------------

    def refuse(self, conn: Connection, err: RequestError, record: AccessRecord | None = None) -> None:
        """Answer an error the server decided on, then close with a linger.
        ``record``: its access record, when a worker had parsed the request."""
        if self.error_log.enabled("info"):
            self.error_log.info(f"client {conn.client_addr}: {err.status} {err.detail or err.reason}")
        self._unwatch(conn)
        self._move(conn, WRITING)
        response = error_response(err.status, err.reason, SERVER_HEADER, http_date())
        self._codes[response_cell(err.status)] += 1  # mpmserver_responses_total, the listener's row
        if self.access_log is not None:
            if record is None:
                record = _raw_record(conn, self.config.limit_request_line)
            record.status = err.status
            record.conn_status = "-"
            record.bytes_out = len(response)
            self._unlogged[conn] = (record, len(response))
        conn.buf = response
        self._set_timer(conn, self.config.timeout, self.close)
        self._write(conn)

    def _log_written(self, conn: Connection, left: int) -> None:
        """Log the response written on conn: all of it, or as much as went
        out before the client vanished or Timeout passed (%X "X"); ``left``:
        its bytes not written (the end of the body first)."""
        record, size = self._unlogged.pop(conn)
        record.bytes_out = size - left
        record.bytes_sent = max(0, record.bytes_sent - left)
        if left:
            record.conn_status = "X"
        record.duration = time.time() - record.start_time
        try:
            self.access_log.log(record)
        except OSError as exc:
            self.error_log.error(f"cannot write the access log: {exc}")

    def _write(self, conn: Connection) -> None:
        """Write conn.buf, waiting for the socket as often as it takes (each
        wait bounded by Timeout); then linger."""
        try:
            n = conn.sock.send(conn.buf, socket.MSG_DONTWAIT)  # blocking when refused at accept
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self.close(conn)
            return
        conn.buf = conn.buf[n:]
        if conn.buf:
            self.loop.add_writer(conn.fd, self._on_writable, conn)
            return
        if conn in self._unlogged:
            self._log_written(conn, 0)
        self.linger(conn)

    def _on_writable(self, conn: Connection) -> None:
        self.loop.remove_writer(conn.fd)
        self._set_timer(conn, self.config.timeout, self.close)
        self._write(conn)

    def linger(self, conn: Connection) -> None:
        """Stop writing, then read and drop what the client still sends for up
        to LINGER_SECONDS, so it receives our last response instead of a reset."""
        self._unwatch(conn)
        self._move(conn, LINGERING)
        self._publish()
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        self._set_timer(conn, LINGER_SECONDS, self.close)
        self.loop.add_reader(conn.fd, self._on_linger_readable, conn)

    def _on_linger_readable(self, conn: Connection) -> None:
        try:
            while True:
                if not conn.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT):
                    break
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.close(conn)

    def close(self, conn: Connection) -> None:
        """End the connection: FIN to the client, then our descriptor closed."""
        self._end(conn, True)

    def release(self, conn: Connection) -> None:
        """Close only our descriptor of a connection a sibling now holds
        (sibling transfer): a shutdown would end it for the sibling too."""
        self._end(conn, False)

    def _end(self, conn: Connection, shutdown: bool) -> None:
        if conn.state == CLOSED:
            return
        if conn in self._unlogged:
            self._log_written(conn, _unwritten(conn))
        self._unwatch(conn)
        if conn.state == WRITING:
            self.loop.remove_writer(conn.fd)
            if conn.tail is not None:
                self._drop_tail(conn)
        if conn.spool is not None:  # a request body spooled, never served
            conn.spool.close()
            conn.spool = None
        # A lingering connection has sent its FIN already.
        close_socket(conn.sock, shutdown and conn.state != LINGERING)
        self._closed(conn)


def _as_queue(tail: bytes | FileTail) -> OutQueue:
    """The static room's tail as a queue: the head's rest, then the file's."""
    queue = OutQueue()
    if type(tail) is FileTail:
        queue.append(tail.head)
        queue.append_file(tail.fd, tail.offset, tail.count)
    else:
        queue.append(tail)
    return queue


def _unwritten(conn: Connection) -> int:
    """Bytes of the response being written on conn not handed to the kernel."""
    tail = conn.tail
    if tail is None:
        return len(conn.buf)  # an error response: conn.buf is what is left of it
    return tail.left


def _client_took(conn: Connection) -> int:
    """Bytes the client has read since write completion began: what was in
    the kernel's send queue then and what the loop handed it since, minus
    what is still there."""
    return conn.stage_bytes - _unsent(conn)


def _unsent(conn: Connection) -> int:
    """Bytes in the socket's send queue, not yet read by the client
    (SIOCOUTQ, which is TIOCOUTQ); 0 where the kernel will not say (then
    what was handed to it counts as read)."""
    try:
        return struct.unpack("i", fcntl.ioctl(conn.fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError):
        return 0


def _raw_record(conn: Connection, limit: int) -> AccessRecord:
    """The access record of a request refused before it could be parsed:
    its first line as received (at most LimitRequestLine bytes), which the
    record splits as far as it goes (logs.parse_request_line)."""
    buf = conn.buf
    end = buf.find(b"\n", 0, limit + 1)
    line = buf[:end if end >= 0 else limit].rstrip(b"\r")
    return AccessRecord(remote_addr=conn.client_addr, remote_port=conn.client_port,
                        local_port=conn.server_port, request_line=line.decode("latin-1"),
                        start_time=time.time(), peer_addr=conn.peer_addr, tls=conn.tls)
