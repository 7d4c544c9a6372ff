"""MetricsPath on a real server: scraped over HTTP, and refused outside MetricsAllow."""

from __future__ import annotations

import socket

from mpmserver.modules.metrics import CONTENT_TYPE
from tests.support.client import http_get
from tests.support.metrics import parse, value
from tests.support.server import wait_for


def test_metrics_path_on_a_real_server(server_factory):
    srv = server_factory("-w", "2", "--threads", "2", "--metrics-path", "/metrics").start()
    for _ in range(5):
        assert http_get(srv.port, "/hello")[0] == 200
    status, headers, body = http_get(srv.port, "/metrics")
    assert status == 200 and headers["content-type"] == CONTENT_TYPE
    assert value(parse(body.decode()), "mpmserver_requests_total") >= 1
    # A worker counts a request once its response is out: the last ones may
    # still be counting when the scrape comes.
    wait_for(lambda: value(parse(http_get(srv.port, "/metrics")[2].decode()), "mpmserver_requests_total") >= 5,
             10, what="the five requests counted")
    wait_for(lambda: value(parse(http_get(srv.port, "/metrics")[2].decode()), "mpmserver_children",
                           generation="0", state="serving") == 2, 10, what="both children serving")


def test_metrics_are_refused_outside_metrics_allow(server_factory):
    srv = server_factory("-w", "1", "--threads", "2", "--metrics-path", "/metrics",
                         "--metrics-allow", "10.0.0.0/8").start()
    status, _, body = http_get(srv.port, "/metrics")
    assert status == 403 and b"see MetricsAllow" in body


def test_responses_by_code_count_the_apps_and_the_servers_own_and_each_child_shows_its_memory(server_factory):
    srv = server_factory("-w", "2", "--threads", "2", "--metrics-path", "/metrics").start()

    def scrape() -> dict:
        return parse(http_get(srv.port, "/metrics")[2].decode())

    before = scrape()
    for _ in range(3):
        assert http_get(srv.port, "/no-such-page")[0] == 404  # the app's
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")  # the server's own 400
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")

    def grew(code: str, by: int):
        m = scrape()
        return value(m, "mpmserver_responses_total", code=code) - value(before, "mpmserver_responses_total",
                                                                          code=code) >= by and m
    m = wait_for(lambda: grew("404", 3) and grew("400", 1), 10, what="the 404s and the 400 counted")
    assert value(m, "mpmserver_responses_total", code="200") >= 1  # the first scrape, at least
    # Each child publishes its memory each second: both children, at a plausible size.
    m = wait_for(lambda: len((m := scrape())["mpmserver_child_resident_memory_bytes"]["samples"]) == 2 and m,
                 10, what="both children's resident memory")
    pids = {dict(labels)["pid"] for labels in m["mpmserver_child_resident_memory_bytes"]["samples"]}
    assert pids == {str(p) for p in srv.children()}
    assert all(8 << 20 < v < 1 << 30 for v in m["mpmserver_child_resident_memory_bytes"]["samples"].values())
