"""Keep-alive parking by the workers (Apache's and gunicorn's way): a worker
registers an idle keep-alive connection in the listener's parking epoll
itself; the loop counts it parked when it next drains, reads its next
request when the socket fires, and one sweep closes those past
KeepAliveTimeout. Each test runs with both event loops."""

import os
import signal
import threading
import time

from tests.support.client import closed_by_server, connect
from tests.support.listener import GET, HELLO, live
from tests.support.server import alive, read_response, wait_for


def test_a_connection_parked_by_its_worker_is_served_on_each_next_request(start):
    s, sb = start(1, 2, "--keep-alive-timeout", "30")
    with connect(s.port) as c:
        for _ in range(20):
            c.sendall(GET)
            assert read_response(c)[:3:2] == (200, HELLO)
            # Between requests it is parked, and counted so.
            wait_for(lambda: sb.snapshot().conns_keep_alive == 1, what="the connection parked")


def test_many_clients_on_parked_connections_lose_no_request(start):
    # The worker parks while the loop polls and drains: a request arriving
    # in between must not be lost (each client waits at most 5 s per answer).
    s, sb = start(1, 4, "--keep-alive-timeout", "30")
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with connect(s.port) as c:
                c.settimeout(5)
                for _ in range(90):  # under MaxKeepAliveRequests (100)
                    c.sendall(GET)
                    assert read_response(c)[:3:2] == (200, HELLO)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    wait_for(lambda: sb.snapshot().conns_total == 0, what="every connection to leave the count")


def served_once(port: int, n: int) -> list:
    """n connections, each answered once and left open (parked)."""
    conns = [connect(port) for _ in range(n)]
    for c in conns:
        c.sendall(GET)
        assert read_response(c)[0] == 200
    return conns


def test_counts_follow_parked_connections(start):
    s, sb = start(1, 2, "--keep-alive-timeout", "30")
    conns = served_once(s.port, 5)
    try:
        wait_for(lambda: sb.snapshot().conns_keep_alive == 5 and sb.snapshot().conns_total == 5,
                 what="five parked connections counted")
        for c in conns[:2]:
            c.close()
        wait_for(lambda: sb.snapshot().conns_keep_alive == 3 and sb.snapshot().conns_total == 3,
                 what="the two closed by their clients to leave the counts")
        conns[2].sendall(GET)
        assert read_response(conns[2])[0] == 200
        wait_for(lambda: sb.snapshot().conns_keep_alive == 3, what="the served one parked again")
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: sb.snapshot().conns_total == 0, what="every connection to leave the count")


def test_keep_alive_timeout_is_per_connection(start):
    # One sweep for the queue: the oldest goes first, a younger one keeps
    # its own full KeepAliveTimeout.
    s, sb = start(1, 2, "--keep-alive-timeout", "2")
    old, young = connect(s.port), connect(s.port)
    try:
        old.sendall(GET)
        assert read_response(old)[0] == 200
        time.sleep(1)  # the gap between the two parkings, not a wait for the server
        young.sendall(GET)
        assert read_response(young)[0] == 200
        assert closed_by_server(old, 10), "the old connection was not closed after KeepAliveTimeout"
        # The young one is still open (parked a second later): a request on it is answered.
        young.sendall(GET)
        assert read_response(young)[0] == 200
        t0 = time.monotonic()
        assert closed_by_server(young, 10)
        assert time.monotonic() - t0 >= 1.5
    finally:
        old.close()
        young.close()
    wait_for(lambda: sb.snapshot().conns_total == 0, what="both closed connections to leave the count")


def test_graceful_stop_closes_connections_parked_by_workers(start):
    s, sb = start(1, 2, "--keep-alive-timeout", "30")
    conns = served_once(s.port, 4)
    try:
        wait_for(lambda: sb.snapshot().conns_keep_alive == 4, what="four parked")
        child = s.children()[0]
        os.kill(child, signal.SIGUSR1)
        wait_for(lambda: live(sb)[0].not_accepting, what="the child to stop accepting")
        t0 = time.monotonic()
        for c in conns:
            assert closed_by_server(c, 10)
        assert time.monotonic() - t0 < 5
        wait_for(lambda: not alive(child), 10, what="the child to exit")
    finally:
        for c in conns:
            c.close()
