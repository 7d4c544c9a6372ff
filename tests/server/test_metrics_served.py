"""MetricsPath on a real server: scraped over HTTP, and refused outside MetricsAllow."""

from __future__ import annotations

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
    m = parse(body.decode())
    assert value(m, "mpmserver_requests_total") >= 5  # wait_ready's requests count too
    wait_for(lambda: value(parse(http_get(srv.port, "/metrics")[2].decode()), "mpmserver_children",
                           generation="0", state="serving") == 2, 10, what="both children serving")


def test_metrics_are_refused_outside_metrics_allow(server_factory):
    srv = server_factory("-w", "1", "--threads", "2", "--metrics-path", "/metrics",
                         "--metrics-allow", "10.0.0.0/8").start()
    status, _, body = http_get(srv.port, "/metrics")
    assert status == 403 and b"see MetricsAllow" in body
