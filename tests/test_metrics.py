"""MetricsPath: the Prometheus text exposition (metrics.py), parsed as a scraper would."""

from __future__ import annotations

import re

import pytest

from mpmserver.metrics import CONTENT_TYPE, render_metrics, worker_state_names
from mpmserver.scoreboard import Scoreboard

from .server import wait_for
from .test_status import hand_built

_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? '
                     r'(\S+)\Z')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, dict]:
    """Families by name: {"type", "help", "samples": {labels tuple: value}}; asserts the format's rules."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    for line in text.splitlines():
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name, help_text = line[7:].split(" ", 1)
            assert name not in families, f"{name} described twice"
            families[name] = {"help": help_text, "type": None, "samples": {}}
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert families[name]["type"] is None and not families[name]["samples"]
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            families[name]["type"] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.groups()
            family = families[name]  # every sample follows its family's HELP and TYPE
            assert family["type"] is not None
            key = tuple(_LABEL.findall(labels or ""))
            assert key not in family["samples"], f"duplicate series {line!r}"
            family["samples"][key] = float(value)
    for name, family in families.items():
        assert name.startswith("mpmserver_")
        assert (family["type"] == "counter") == name.endswith("_total"), name
    return families


def value(families, name, **labels):
    return families[name]["samples"][tuple(labels.items())]


def test_hand_built_snapshot_exposes_children_workers_requests_and_connections():
    snap = hand_built()
    m = parse(render_metrics(snap, "mpmserver/0.1.0"))
    assert value(m, "mpmserver_info", version="mpmserver/0.1.0") == 1
    assert value(m, "mpmserver_generation") == 1 and value(m, "mpmserver_restarts_total") == 1
    # slot 0 serves in generation 1; slot 1 is an old generation's, stopping; slot 2 is free
    assert m["mpmserver_children"]["samples"] == {
        (("generation", "0"), ("state", "stopping")): 1, (("generation", "1"), ("state", "serving")): 1}
    workers = {dict(k)["state"]: v for k, v in m["mpmserver_workers"]["samples"].items()}
    assert set(workers) == set(worker_state_names())
    assert workers["ready"] == 2 and workers["write"] == 1 and workers["graceful"] == 1
    assert value(m, "mpmserver_requests_total") == snap.total_accesses == 40
    assert value(m, "mpmserver_bytes_served_total") == snap.total_bytes
    assert value(m, "mpmserver_request_duration_seconds_total") == pytest.approx(2.0)
    assert value(m, "mpmserver_connections_open") == 6
    assert value(m, "mpmserver_connections_parked") == 2
    assert value(m, "mpmserver_connections_lingering") == 1
    assert value(m, "mpmserver_connections_writing") == snap.conns_writing
    assert value(m, "mpmserver_draining") == 0


def test_a_live_scoreboard_renders_and_label_values_are_escaped():
    board = Scoreboard.create(2, 2)
    try:
        board.process(0).spawned(1234, 0, draining=True)
        w = board.worker(0, 0)
        w.thread_started(1234, 1, 0)
        w.begin_request(b"GET / HTTP/1.1")
        w.end_request(100)
        m = parse(render_metrics(board.snapshot(), 'odd "version"\\n'))
        assert value(m, "mpmserver_info", version='odd \\"version\\"\\\\n') == 1
        assert value(m, "mpmserver_requests_total") == 1
        assert value(m, "mpmserver_bytes_served_total") == 100
        assert value(m, "mpmserver_children", generation="0", state="serving") == 1
        assert value(m, "mpmserver_draining") == 1
    finally:
        board.close()


def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    import socket

    from .server import read_response

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        status, headers, body, _ = read_response(s)
        return status, headers, body


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
