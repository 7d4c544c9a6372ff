"""Write completion (issue 16, item 2): once the app is done, the rest of a
response the socket cannot take yet is written by the event loop, not by a
worker (Apache event MPM's CONN_STATE_WRITE_COMPLETION, ConnsAsyncWriting).

Real server, 1 child x 2 threads, Timeout 2; the app is
tests/apps/hostile_apps.py (/file: 8 MiB through wsgi.file_wrapper,
/one-piece: the same bytes as one body).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import pytest

from mpmserver.scoreboard import Scoreboard
from tests.apps.hostile_apps import FILE_SIZE, file_content
from tests.support.client import parse
from tests.support.hostile import APP
from tests.support.server import http, wait_for
from tests.support.timing import timing

THREADS = 2
RCVBUF = 4096
EXPECTED = hashlib.sha256(file_content()).hexdigest()


@pytest.fixture
def small(server_factory, tmp_path):
    sb = str(tmp_path / "scoreboard")
    s = server_factory("--start-servers", "1", "--threads-per-child", str(THREADS), "--min-spare-threads", "1",
                       "--max-spare-threads", "64", "--max-request-workers", str(THREADS),
                       "--timeout", "2", "--scoreboard-file", sb, "--status-path", "/server-status", app=APP)
    s.scoreboard_path = sb
    return s.start()


def snapshot(s):
    return Scoreboard.attach(s.scoreboard_path).snapshot()


def slow_client(port: int, path: bytes) -> socket.socket:
    """A connection with a small receive buffer that has asked for ``path``."""
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    c.settimeout(10)
    c.connect(("127.0.0.1", port))
    c.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    return c


def read_all(c: socket.socket, pause: float, piece: int = 65536) -> bytes:
    """Everything until the server closes, ``pause`` seconds between reads."""
    chunks = []
    while True:
        d = c.recv(piece)
        if not d:
            return b"".join(chunks)
        chunks.append(d)
        time.sleep(pause)


def probe(port: int) -> float:
    """Seconds a request on a new connection takes to be answered."""
    t0 = time.monotonic()
    status, _, body = parse(http(port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=5))
    assert (status, body) == (200, b"hello")
    return time.monotonic() - t0


@pytest.mark.parametrize("path", [b"/file", b"/one-piece"])
def test_a_slow_steady_reader_gets_the_whole_response_intact(small, path):
    c = slow_client(small.port, path)
    with c:
        # 4 KiB every 2 ms: about 2 MB/s, several seconds for 8 MiB, over
        # many loop wake-ups.
        resp = read_all(c, 0.002, 4096)
    status, headers, body = parse(resp)
    assert status == 200 and int(headers["content-length"]) == FILE_SIZE
    assert len(body) == FILE_SIZE and hashlib.sha256(body).hexdigest() == EXPECTED
    wait_for(lambda: snapshot(small).conns_total == 0, 5, 0.05, "the connection to be closed")


def test_fifty_slow_readers_hold_no_worker_and_probes_are_answered(small, record_property):
    readers = [slow_client(small.port, b"/file") for _ in range(50)]
    stop = threading.Event()
    got = [0] * len(readers)

    def read(i: int) -> None:
        c = readers[i]
        while not stop.is_set():
            d = c.recv(4096)
            if not d:
                return
            got[i] += len(d)
            time.sleep(0.05)  # ~80 KB/s each: 8 MiB would take ~100 s

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(readers))]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: snapshot(small).conns_writing >= 45, 10, 0.05,
                 "the readers' responses to be in write completion")
        slowest = 0.0
        # Past Timeout (2 s): a reader that keeps reading is kept, although
        # the kernel's send buffer may not drain enough within Timeout to
        # make the socket writable.
        for _ in range(25):
            slowest = max(slowest, probe(small.port))
            # The probe's worker may still be ending its request (closing,
            # logging) for a moment after the client has the response.
            # A behaviour, not a timing: 5 s only keeps a failure from hanging.
            wait_for(lambda: snapshot(small).busy_workers == 0, 5, 0.01,
                     "no busy worker while only the loop has work")
            assert snapshot(small).conns_writing >= 45
            time.sleep(0.15)
        timing(record_property, "write completion: the slowest request beside 50 slow readers", slowest * 1000,
               "ms", 1000)
        status = http(small.port, b"GET /server-status?auto HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        line = [ln for ln in status.split(b"\n") if ln.startswith(b"ConnsAsyncWriting")][0]
        assert int(line.split(b":")[1]) >= 45
        assert all(n > 0 for n in got) and all(n < FILE_SIZE for n in got)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for c in readers:
            c.close()
    wait_for(lambda: snapshot(small).conns_total == 0, 10, 0.05, "every reader's connection to be closed")
    assert snapshot(small).conns_writing == 0


def test_a_reader_that_stops_reading_is_dropped_after_timeout(small, record_property):
    c = slow_client(small.port, b"/file")
    with c:
        wait_for(lambda: snapshot(small).conns_writing == 1, 5, 0.02, "the response to be in write completion")
        t0 = time.monotonic()
        assert snapshot(small).busy_workers == 0
        # Timeout is 2 s per wait: the loop gives up on a client that reads nothing.
        wait_for(lambda: snapshot(small).conns_total == 0, 8, 0.05, "the stalled reader to be dropped")
        # Not before Timeout (2 s per wait; 1.5 s allows for when the wait began).
        dropped_after = time.monotonic() - t0
        assert dropped_after > 1.5
        timing(record_property, "write completion: a stalled reader dropped after (Timeout 2 s)", dropped_after,
               "s", 6)
        received = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                received += d
        except ConnectionResetError:
            pass
        assert len(received) < FILE_SIZE
    # Once the stalled reader is dropped, a new client is answered (probe()
    # asserts the 200); how soon is a figure.
    timing(record_property, "write completion: a new request answered after a stalled reader was dropped",
           probe(small.port) * 1000, "ms", 1000)


@pytest.mark.parametrize("path", [b"/file", b"/one-piece"])
def test_keep_alive_and_a_pipelined_request_go_on_after_the_tail(small, path):
    """The loop carries out the worker's outcome once the tail is written:
    the pipelined request that waited behind it is answered next, in order."""
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    c.settimeout(10)
    c.connect(("127.0.0.1", small.port))
    with c:
        c.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        got = []
        reader = threading.Thread(target=lambda: got.append(read_all(c, 0.002, 4096)), daemon=True)
        reader.start()  # a worker writing /one-piece needs a reader to get down to its tail
        wait_for(lambda: snapshot(small).conns_writing == 1, 5, 0.02, "the response to be in write completion")
        reader.join(20)
    resp = got[0]
    status, headers, body = parse(resp)
    assert status == 200 and "close" not in headers.get("connection", "")
    assert hashlib.sha256(body).hexdigest() == EXPECTED
    rest = resp[resp.index(b"\r\n\r\n") + 4 + FILE_SIZE:]
    assert parse(rest)[::2] == (200, b"hello")


@pytest.mark.parametrize("mode", ["non-blocking, as a worker keeps it", "Python's timeout mode"])
def test_channel_leaves_only_the_last_bytes_and_only_when_asked(mode):
    """Channel.send without a spooler (ResponseSpool Off): with tail_ok,
    what the socket cannot take (up to TAIL_LIMIT) is left in ``tail`` at
    once; without it, the worker waits (here until Timeout)."""
    from mpmserver.http.response import TAIL_LIMIT, Channel

    a, b = socket.socketpair()
    with a, b:
        if mode.startswith("non-blocking"):
            a.setblocking(False)
            ch = Channel(a, 0.2)
        else:
            a.settimeout(0.2)
            ch = Channel(a)
        data = bytes(range(256)) * 2048  # 512 KiB: more than a socketpair holds
        ch.tail_ok = True
        ch.send(data)
        assert ch.tail is not None and not ch.tail_ok
        queued = b"".join(bytes(piece) for piece in ch.tail.items)  # ResponseSpool Off: in memory
        assert 0 < len(queued) <= TAIL_LIMIT and data.endswith(queued)
        assert ch.sent == len(data)  # the queued bytes count as sent (the access log's %O)
        with pytest.raises(TimeoutError):
            Channel(a, 0.2).send(data)


def test_channel_on_a_non_blocking_socket_waits_for_bytes_up_to_its_timeout():
    """A worker's socket stays non-blocking; its Channel waits for bytes
    (Timeout, or RequestReadTimeout's shorter wait) instead of failing."""
    from mpmserver.http.response import Channel

    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        ch = Channel(a, 5.0)
        sender = threading.Timer(0.05, b.sendall, (b"late",))
        sender.start()
        assert ch.recv(100) == b"late"  # waited, not BlockingIOError
        sender.join()
        with pytest.raises(TimeoutError):
            ch.recv_within(100, 0.05)
        b.close()
        assert ch.recv(100) == b""
