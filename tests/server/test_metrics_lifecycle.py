"""The master's counters on /metrics: spawns, restarts, recycles by cause and
crashes, each cause end to end on the real server (the cause mapping as a
pure function: tests/unit/master/test_maintenance.py, test_exit_cause)."""

from __future__ import annotations

import signal
import socket

from tests.support.client import http_get
from tests.support.metrics import histograms, parse, value
from tests.support.server import wait_for

# --- end to end -------------------------------------------------------------


class Scraper:
    """Reads /metrics, counting its own requests (each one is served and counted)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.scrapes = 0

    def __call__(self) -> dict[str, dict]:
        status, _, body = http_get(self.port, "/metrics")
        assert status == 200
        self.scrapes += 1
        return parse(body.decode())


def recycles(m: dict, cause: str) -> float:
    return value(m, "mpmserver_recycles_total", cause=cause)


def wait_metrics(scrape: Scraper, predicate, what: str, timeout: float = 20.0) -> dict:
    """The first scrape whose metrics satisfy ``predicate`` (a scrape cut by a
    restart is tried again)."""
    found = {}

    def check():
        try:
            found["m"] = m = scrape()
        except OSError:
            return False
        return predicate(m)
    wait_for(check, timeout, 0.1, what)
    return found["m"]


def raw_request(port: int, path: str) -> None:
    """A request whose child may die under it: read until the connection ends, however it ends."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass


def test_connections_recycles_spawns_and_the_histogram_on_a_real_server(server_factory):
    srv = server_factory("-w", "2", "--threads", "2", "--max-connections-per-child", "4",
                         "--metrics-path", "/metrics").start()
    scrape = Scraper(srv.port)
    before = scrape()
    made = 0
    for _ in range(12):
        assert http_get(srv.port, "/hello")[0] == 200
        made += 1
    assert http_get(srv.port, "/slow?t=0.3")[0] == 200  # one request past the 0.25 s bound
    made += 1
    base = value(before, "mpmserver_requests_total")

    def served_since_before(m):
        # Each scrape is served after its snapshot: the current one is not counted yet.
        return value(m, "mpmserver_requests_total") - base - (made + scrape.scrapes - 1)
    # 13 connections and more over 2 children of 4 connections each: at least 2 recycles.
    # A worker counts a request just after sending its response: wait until all have been.
    m = wait_metrics(scrape, lambda m: recycles(m, "connections") >= recycles(before, "connections") + 2
                     and served_since_before(m) >= 0, "two MaxConnectionsPerChild recycles, every request counted")
    assert value(m, "mpmserver_spawns_total") >= value(before, "mpmserver_spawns_total") + 2
    for cause in ("requests", "memory", "request_timeout"):
        assert recycles(m, cause) == 0
    assert value(m, "mpmserver_child_crashes_total") == 0
    # Nothing else was counted: only, perhaps, wait_ready's request, if its
    # worker had not yet counted it when the first scrape read the scoreboard.
    assert served_since_before(m) in (0, 1)
    # The histograms count exactly what requests_total counts.
    requests = value(m, "mpmserver_requests_total")
    total = histograms(m["mpmserver_server_request_duration_seconds"])[()]
    per_slot = histograms(m["mpmserver_request_duration_seconds"])
    assert total["count"] == sum(s["count"] for s in per_slot.values()) == requests
    assert total["buckets"]["+Inf"] - total["buckets"]["0.25"] >= 1  # the slow one
    assert total["sum"] >= 0.3


def test_requests_recycles_on_a_real_server(server_factory):
    srv = server_factory("-w", "1", "--threads", "2", "--max-requests-per-child", "3",
                         "--metrics-path", "/metrics").start()
    scrape = Scraper(srv.port)
    for _ in range(6):
        assert http_get(srv.port, "/hello")[0] == 200
    m = wait_metrics(scrape, lambda m: recycles(m, "requests") >= 2, "two MaxRequestsPerChild recycles")
    assert recycles(m, "connections") == 0 and value(m, "mpmserver_child_crashes_total") == 0
    assert value(m, "mpmserver_spawns_total") >= 3


def test_crashes_on_a_real_server(server_factory):
    srv = server_factory("-w", "2", "--threads", "2", "--metrics-path", "/metrics").start()
    scrape = Scraper(srv.port)
    raw_request(srv.port, "/crash")  # SIGKILL
    raw_request(srv.port, "/exit")  # os._exit(3)
    m = wait_metrics(scrape, lambda m: value(m, "mpmserver_child_crashes_total") == 2, "two crashes")
    assert all(recycles(m, cause) == 0 for cause in ("connections", "requests", "memory", "request_timeout"))
    wait_metrics(scrape, lambda m: value(m, "mpmserver_spawns_total") >= 4, "both replaced")


def test_request_timeout_recycle_on_a_real_server(server_factory):
    srv = server_factory("-w", "1", "--threads", "2", "--request-timeout", "1",
                         "--metrics-path", "/metrics").start()
    scrape = Scraper(srv.port)
    assert http_get(srv.port, "/slow?t=2.5")[0] == 200  # stopped gracefully: the request still finishes
    m = wait_metrics(scrape, lambda m: recycles(m, "request_timeout") == 1, "the RequestTimeout recycle")
    assert value(m, "mpmserver_child_crashes_total") == 0


def test_memory_recycle_on_a_real_server(server_factory):
    # Any Python child is past 1 MB: each one recycles at its first check.
    srv = server_factory("-w", "1", "--threads", "2", "--max-memory-per-child", "1M",
                         "--metrics-path", "/metrics").start()
    m = wait_metrics(Scraper(srv.port), lambda m: recycles(m, "memory") >= 1, "a MaxMemoryPerChild recycle")
    assert value(m, "mpmserver_child_crashes_total") == 0


def test_restarts_are_counted_by_kind_and_the_counters_survive_hup(server_factory):
    srv = server_factory("-w", "2", "--threads", "2", "--metrics-path", "/metrics").start()
    scrape = Scraper(srv.port)
    first = scrape()
    assert value(first, "mpmserver_spawns_total") == 2
    assert value(first, "mpmserver_restarts_total", kind="graceful") == 0
    srv.signal(signal.SIGUSR1)
    m = wait_metrics(scrape, lambda m: value(m, "mpmserver_restarts_total", kind="graceful") == 1
                     and value(m, "mpmserver_spawns_total") >= 4, "the graceful restart and its children")
    srv.signal(signal.SIGHUP)
    m = wait_metrics(scrape, lambda m: value(m, "mpmserver_restarts_total", kind="hup") == 1
                     and value(m, "mpmserver_spawns_total") >= 6, "the HUP restart and its children")
    # HUP zeroed the scoreboard (requests count again from zero), not the master's counters.
    assert value(m, "mpmserver_requests_total") < scrape.scrapes
    assert value(m, "mpmserver_restarts_total", kind="graceful") == 1
    assert value(m, "mpmserver_generation") == 2
    assert value(m, "mpmserver_child_crashes_total") == 0
