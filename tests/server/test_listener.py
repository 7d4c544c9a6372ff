"""The event listener: parking, head reading, timeouts, lingering close and
admission, each with both event loops (uvloop and plain asyncio)."""

import os
import select
import threading
import time

from tests.support.client import closed_by_server, connect
from tests.support.listener import GET, HELLO, live
from tests.support.server import alive, read_response, wait_for


def request(port: int, path: bytes = b"/hello") -> int:
    with connect(port) as c:
        c.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return read_response(c)[0]


def busy_workers(sb) -> int:
    return sb.snapshot().busy_workers


# -- parking -------------------------------------------------------------------------

def test_parked_connection_frees_its_thread_and_shows_as_keep_alive(start):
    s, sb = start(1, 1, "--keep-alive-timeout", "30")
    a = connect(s.port)
    try:
        a.sendall(GET)
        assert read_response(a)[:3:2] == (200, HELLO)
        # A is parked (K in the process record), its thread is idle ...
        wait_for(lambda: sb.snapshot().conns_keep_alive == 1, what="the parked connection counted as K")
        # The worker marks itself idle just after handing the connection back.
        wait_for(lambda: busy_workers(sb) == 0, what="the worker idle while A stays parked")
        assert sb.snapshot().conns_keep_alive == 1
        # ... so the only worker serves another client at once, not after
        # KeepAliveTimeout (worker MPM behaviour).
        t0 = time.monotonic()
        for _ in range(3):
            assert request(s.port) == 200
        assert time.monotonic() - t0 < 10
        # And A's next request goes to a worker again.
        a.sendall(GET)
        assert read_response(a)[:3:2] == (200, HELLO)
        wait_for(lambda: sb.snapshot().conns_keep_alive == 1, what="A parked again")
    finally:
        a.close()
    wait_for(lambda: sb.snapshot().conns_keep_alive == 0, what="K count back to 0 after the client closed")


def test_status_auto_reports_parked_connections(server_factory):
    s = status_server(server_factory, "--keep-alive-timeout", "30")
    parked = [connect(s.port) for _ in range(3)]
    try:
        for c in parked:
            c.sendall(GET)
            assert read_response(c)[0] == 200

        wait_for(lambda: int(status_auto(s.port)["ConnsAsyncKeepAlive"]) == 3, what="ConnsAsyncKeepAlive: 3")
    finally:
        for c in parked:
            c.close()


def status_server(server_factory, *extra: str):
    """One child of 2 threads with a status page."""
    return server_factory("--start-servers", "1", "--server-limit", "1", "--threads-per-child", "2",
                          "--min-spare-threads", "1", "--max-spare-threads", "2", "--max-request-workers", "2",
                          "--status-path", "/server-status", *extra).start()


def status_auto(port: int) -> dict[str, str]:
    with connect(port) as c:
        c.sendall(b"GET /server-status?auto HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        body = read_response(c)[2].decode()
    return dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)


def test_status_auto_reports_lingering_closes(server_factory):
    # A client the server closes on (here MaxKeepAliveRequests 1) but that has
    # not closed its side is drained by the listener (lingering close) for up
    # to 2 s: it may still be sending.
    s = status_server(server_factory, "--max-keep-alive-requests", "1")
    open_ = [connect(s.port) for _ in range(2)]
    try:
        for c in open_:
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(c)[0] == 200
        wait_for(lambda: int(status_auto(s.port)["ConnsAsyncClosing"]) >= 2, 1.5, 0.02,
                 what="ConnsAsyncClosing: 2 while the clients keep their side open")
    finally:
        for c in open_:
            c.close()
    wait_for(lambda: status_auto(s.port)["ConnsAsyncClosing"] == "0", what="ConnsAsyncClosing: 0")


def test_request_split_across_parking_is_answered(start):
    s, sb = start(1, 1, "--keep-alive-timeout", "30")
    with connect(s.port) as c:
        # The first request and the first half of the next arrive together.
        c.sendall(GET + b"GET /hello HTTP/1.1\r\nHo")
        status, _, body, rest = read_response(c)
        assert (status, body, rest) == (200, HELLO, b"")
        wait_for(lambda: busy_workers(sb) == 0, what="the worker to let go of the half head")
        c.sendall(b"st: t\r\n\r\n")
        status, _, body, rest = read_response(c)
        assert (status, body, rest) == (200, HELLO, b"")


def test_pipelined_requests_are_answered_in_order_with_one_thread(start):
    s, _ = start(1, 1)
    with connect(s.port) as c:
        paths = [b"/hello", b"/pid", b"/hello", b"/env"]
        c.sendall(b"".join(b"GET " + p + b" HTTP/1.1\r\nHost: t\r\n\r\n" for p in paths))
        buf = b""
        bodies = []
        for _ in paths:
            status, _, body, buf = read_response(c, buf)
            assert status == 200
            bodies.append(body)
        assert bodies[0] == bodies[2] == HELLO
        assert b"pid" in bodies[1] and bodies[3] != HELLO


def test_keep_alive_timeout_closes_a_parked_connection_silently(start):
    s, sb = start(1, 2, "--keep-alive-timeout", "1")
    with connect(s.port) as c:
        c.sendall(GET)
        assert read_response(c)[0] == 200
        t0 = time.monotonic()
        assert closed_by_server(c, 10), "parked connection not closed after KeepAliveTimeout"
        assert time.monotonic() - t0 >= 0.5
    wait_for(lambda: sb.snapshot().conns_total == 0, what="the closed connection to leave the count")


def test_max_keep_alive_requests_across_parking(start):
    s, _ = start(1, 2, "--max-keep-alive-requests", "3")
    with connect(s.port) as c:
        for i in range(1, 4):
            c.sendall(GET)
            status, headers, _, rest = read_response(c)
            assert status == 200 and rest == b""
            assert ("close" in headers.get("connection", "").lower()) == (i == 3), (i, headers)
        assert closed_by_server(c, 10)


# -- slow heads and lingering close --------------------------------------------------

def test_slow_head_gets_408_after_timeout_without_holding_a_worker(start):
    s, sb = start(1, 2, "--timeout", "1")
    with connect(s.port) as c:
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        t0 = time.monotonic()
        # While the head is incomplete no worker has the connection.
        while not select.select([c], [], [], 0.05)[0]:
            assert busy_workers(sb) == 0, "a worker is busy with an incomplete head"
            assert time.monotonic() - t0 < 10, "no 408 within 10 s of a 1 s Timeout"
        status, headers, _, _ = read_response(c)
        assert status == 408 and "close" in headers.get("connection", "").lower()
        assert time.monotonic() - t0 >= 0.5
    assert request(s.port) == 200


def test_error_response_reaches_a_client_that_keeps_sending(start):
    # Lingering close: the refused client's late bytes are read and dropped, so
    # it receives the 431 instead of a reset.
    s, _ = start(1, 2, "--limit-request-field-size", "100")
    with connect(s.port) as c:
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 200)
        try:
            for _ in range(16):
                c.sendall(b"y" * 4096)
        except OSError:
            pass
        status = read_response(c)[0]
    assert status == 431


# -- admission -----------------------------------------------------------------------

def test_child_at_max_open_connections_stops_accepting_until_one_closes(start):
    s, sb = start(1, 2, "--max-open-connections-per-child", "3")
    wait_for(lambda: sb.snapshot().conns_total == 0, what="the readiness probe's connection to close")
    # Connections that sent nothing yet are not parked: they cannot be given up.
    silent = [connect(s.port) for _ in range(3)]
    late = None
    try:
        wait_for(lambda: live(sb)[0].not_accepting and live(sb)[0].connections == 3,
                 what="the child at its limit to stop accepting")
        late = connect(s.port)  # completes in the kernel's backlog
        late.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert not select.select([late], [], [], 0.3)[0], "answered beyond MaxOpenConnectionsPerChild"
        silent.pop().close()
        late.settimeout(10)
        assert read_response(late)[0] == 200
    finally:
        for c in silent + [late]:
            if c is not None:
                c.close()


def test_oldest_parked_connection_makes_room_for_a_new_client(start):
    s, sb = start(1, 2, "--max-open-connections-per-child", "3", "--keep-alive-timeout", "30")
    wait_for(lambda: sb.snapshot().conns_total == 0, what="the readiness probe's connection to close")
    parked = []
    try:
        for _ in range(3):
            c = connect(s.port)
            c.sendall(GET)
            assert read_response(c)[0] == 200
            parked.append(c)
            wait_for(lambda: sb.snapshot().conns_keep_alive == len(parked), what="parked")
        assert request(s.port) == 200
        assert closed_by_server(parked[0], 10), "the oldest parked connection was not given up"
        for c in parked[1:]:
            c.sendall(GET)
            assert read_response(c)[0] == 200
    finally:
        for c in parked:
            c.close()


def test_slowloris_does_not_starve_normal_clients(start):
    s, sb = start(2, 2)
    slow = []
    stop = threading.Event()

    def drip():
        # One header byte per connection every half second.
        while not stop.is_set():
            for c in slow:
                try:
                    c.send(b"a")
                except OSError:
                    pass
            stop.wait(0.5)
    try:
        for _ in range(200):
            c = connect(s.port)
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            slow.append(c)
        t = threading.Thread(target=drip, daemon=True)
        t.start()
        wait_for(lambda: sb.snapshot().conns_total >= 200, what="200 slow connections open")
        for _ in range(10):
            assert busy_workers(sb) == 0, "a worker is busy for a slow connection"
            time.sleep(0.05)
        t0 = time.monotonic()
        for _ in range(40):
            assert request(s.port) == 200
        # 40 hello requests take well under a second on an idle machine.
        assert time.monotonic() - t0 < 8, "normal clients were slowed down by slow ones"
    finally:
        stop.set()
        for c in slow:
            c.close()


# -- graceful stop -------------------------------------------------------------------

def test_graceful_stop_answers_a_busy_client_and_closes_an_idle_one(start):
    import signal

    s, sb = start(1, 2, "--keep-alive-timeout", "30")
    idle, busy = connect(s.port), connect(s.port)
    try:
        for c in (idle, busy):
            c.sendall(GET)
            assert read_response(c)[0] == 200
        wait_for(lambda: sb.snapshot().conns_keep_alive == 2, what="both parked")
        child = s.children()[0]
        os.kill(child, signal.SIGUSR1)  # what the master sends a child to stop gracefully
        wait_for(lambda: live(sb)[0].not_accepting, what="the child to stop accepting")
        # The busy client's next request, on its way as the stop begins, is
        # answered (and told the connection closes), not reset.
        busy.sendall(GET)
        status, headers, body, _ = read_response(busy)
        assert (status, body) == (200, HELLO) and headers.get("connection") == "close"
        # The idle one is closed after the short grace, long before KeepAliveTimeout.
        t0 = time.monotonic()
        assert closed_by_server(idle, 10)
        assert time.monotonic() - t0 < 5
        wait_for(lambda: not alive(child), 10, what="the child to exit")
    finally:
        idle.close()
        busy.close()


def test_a_client_that_asked_to_close_is_closed_without_lingering(start):
    # Connection: close from the client, nothing unread: the worker closes at
    # once (FIN), the listener never drains it, and the count is right.
    s, sb = start(1, 2)
    with connect(s.port) as c:
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert read_response(c)[0] == 200
        assert closed_by_server(c, 5)
    wait_for(lambda: live(sb)[0].connections == 0 and live(sb)[0].lingering_close == 0,
             what="no connection left in the child")
    # The server still answers, on the same descriptors.
    assert request(s.port) == 200


def test_closes_reported_without_a_wake_up_of_their_own_are_counted(start):
    # One worker: after each dispatch the listener waits for it, so the
    # worker's close (DONE) rides on its going idle; with a burst the
    # listener also accepts while closes are deferred. Every request is
    # answered and the count comes back to nothing.
    import concurrent.futures

    s, sb = start(1, 1)
    for _ in range(5):
        assert request(s.port) == 200
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: request(s.port), range(40))) == {200}
    wait_for(lambda: live(sb)[0].connections == 0, what="no connection left in the child")
    assert request(s.port) == 200
