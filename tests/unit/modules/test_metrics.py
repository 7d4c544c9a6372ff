"""MetricsPath: the Prometheus text exposition (metrics.py), parsed as a scraper would."""

from __future__ import annotations

import pytest

from mpmserver.modules.metrics import render_metrics, worker_state_names
from mpmserver import scoreboard as sbm
from mpmserver.scoreboard import DURATION_BUCKETS, RECYCLE_REQUESTS, Scoreboard
from tests.support.metrics import histograms, parse, value
from tests.support.snapshots import hand_built


def test_hand_built_snapshot_exposes_children_workers_requests_and_connections():
    snap = hand_built()
    m = parse(render_metrics(snap, "mpmserver/0.1.0"))
    assert value(m, "mpmserver_info", version="mpmserver/0.1.0") == 1
    assert value(m, "mpmserver_generation") == 1
    assert value(m, "mpmserver_restarts_total", kind="graceful") == 0  # the hand-built counters are zero
    assert value(m, "mpmserver_spawns_total") == 0
    # slot 0 serves in generation 1; slot 1 is an old generation's, stopping; slot 2 is free
    assert m["mpmserver_children"]["samples"] == {
        (("generation", "0"), ("state", "stopping")): 1, (("generation", "1"), ("state", "serving")): 1}
    workers = {dict(k)["state"]: v for k, v in m["mpmserver_workers"]["samples"].items()}
    assert set(workers) == set(worker_state_names())
    assert workers["ready"] == 2 and workers["write"] == 1 and workers["graceful"] == 1
    assert value(m, "mpmserver_requests_total") == snap.total_accesses == 40
    assert value(m, "mpmserver_bytes_served_total") == snap.total_bytes
    total = histograms(m["mpmserver_server_request_duration_seconds"])[()]
    assert total["sum"] == pytest.approx(2.0)
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


def observe(worker, seconds: float) -> None:
    """One request of exactly this duration (the clock is passed in)."""
    worker.begin_request(b"GET / HTTP/1.1", _now=lambda: 1000.0)
    worker.end_request(10, _now=lambda: 1000.0 + seconds)


def test_duration_histogram_per_slot_and_in_total_from_a_scoreboard_file(tmp_path):
    board = Scoreboard.create(3, 2, str(tmp_path / "scoreboard"))
    try:
        for slot in (0, 1):
            board.process(slot).spawned(1000 + slot, 0)
            for t in (0, 1):
                board.worker(slot, t).thread_started(1000 + slot, t, 0)
        a, b, c = board.worker(0, 0), board.worker(0, 1), board.worker(1, 1)
        for worker, seconds in ((a, 0.001), (a, 0.3), (b, 0.02), (b, 12.0), (c, 0.001), (c, 0.07)):
            observe(worker, seconds)
        board.process(1).clear()  # a slot whose child is gone keeps its counts until a HUP
        reader = Scoreboard.attach(board.path)  # as `mpmserver status` would, from another process
        m = parse(render_metrics(reader.snapshot()))
        reader.close()
    finally:
        board.close()
    per_slot = histograms(m["mpmserver_request_duration_seconds"])
    assert set(per_slot) == {(("slot", "0"),), (("slot", "1"),)}  # slot 2 never served: no series
    s0, s1 = per_slot[(("slot", "0"),)], per_slot[(("slot", "1"),)]
    assert s0["buckets"]["0.005"] == 1 and s0["buckets"]["0.025"] == 2 and s0["buckets"]["0.25"] == 2
    assert s0["buckets"]["0.5"] == 3 and s0["buckets"]["10.0"] == 3 and s0["buckets"]["+Inf"] == 4
    assert s0["sum"] == pytest.approx(0.001 + 0.3 + 0.02 + 12.0)
    assert s1["buckets"]["0.005"] == 1 and s1["buckets"]["0.075"] == 2 and s1["count"] == 2
    assert list(s0["buckets"]) == [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
    total = histograms(m["mpmserver_server_request_duration_seconds"])[()]
    assert total["count"] == s0["count"] + s1["count"] == value(m, "mpmserver_requests_total") == 6
    assert total["buckets"]["0.075"] == 4
    assert total["sum"] == pytest.approx(s0["sum"] + s1["sum"])


def test_a_duration_on_a_bound_counts_in_that_bucket():
    """Prometheus' buckets are "less or equal"."""
    board = Scoreboard.create(1, 1)
    try:
        w = board.worker(0, 0)
        w.thread_started(1, 1, 0)
        w.begin_request(b"GET / HTTP/1.1", _now=lambda: 0.0)
        w.end_request(1, _now=lambda: 0.25)
        assert board.snapshot().processes[0].duration_buckets[DURATION_BUCKETS.index(0.25)] == 1
    finally:
        board.close()


def test_master_counters_are_exposed_with_help_saying_a_hup_keeps_them():
    board = Scoreboard.create(2, 1)
    try:
        for _ in range(5):
            board.count_spawn()
        board.count_restart(graceful=True)
        board.count_restart(graceful=False)
        board.count_restart_failure()
        for cause in ("connections", "connections", "requests", "memory", "request_timeout", "crash"):
            board.count_exit(cause)
        board.process(0).spawned(4321, 1)
        board.process(0).set_recycle_cause(RECYCLE_REQUESTS)
        board.reset()  # HUP: the records go, the master's counts stay
        m = parse(render_metrics(board.snapshot()))
    finally:
        board.close()
    assert value(m, "mpmserver_spawns_total") == 5
    assert value(m, "mpmserver_restarts_total", kind="graceful") == 1
    assert value(m, "mpmserver_restarts_total", kind="hup") == 1
    assert {dict(k)["cause"]: v for k, v in m["mpmserver_recycles_total"]["samples"].items()} == {
        "connections": 2, "requests": 1, "memory": 1, "request_timeout": 1}
    assert value(m, "mpmserver_child_crashes_total") == 1
    assert value(m, "mpmserver_restart_failures_total") == 1
    for name in ("spawns_total", "restarts_total", "recycles_total", "child_crashes_total"):
        assert "since the master started" in m[f"mpmserver_{name}"]["help"]
        assert "HUP" in m[f"mpmserver_{name}"]["help"]


def test_tls_connections_handshakes_and_failures_by_reason():
    import os

    board = Scoreboard.create(2, 1)
    try:
        for slot, counts in ((0, (2, 1, (1, 0, 2, 0, 0, 3, 0, 0))), (1, (1, 0, (0, 0, 1, 0, 4, 0, 0, 0)))):
            board.process(slot).spawned(os.getpid(), 0)
            board.process(slot).set_tls(*counts)
        m = parse(render_metrics(board.snapshot()))
        assert value(m, "mpmserver_tls_connections") == 3 and value(m, "mpmserver_tls_handshakes") == 1
        failures = {dict(k)["reason"]: v for k, v in m["mpmserver_tls_handshake_failures_total"]["samples"].items()}
        assert failures == {"timeout": 1, "closed": 0, "plain_http": 3, "not_tls": 0, "alpn": 4, "protocol": 3,
                            "certificate": 0, "other": 0}
    finally:
        board.close()
def test_static_responses_are_counted_per_slot():
    import dataclasses

    from mpmserver.modules.metrics import render_metrics
    from tests.support.snapshots import hand_built

    snap = hand_built()
    p0 = dataclasses.replace(snap.processes[0], static_requests=7, static_bytes=7000)
    snap = dataclasses.replace(snap, processes=(p0, *snap.processes[1:]))
    text = render_metrics(snap)
    assert 'mpmserver_static_responses_total{slot="0"} 7' in text
    assert 'mpmserver_static_bytes_total{slot="0"} 7000' in text
    assert snap.total_accesses == sum(w.access_count for p in snap.processes for w in p.workers) + 7


def test_responses_by_code_and_each_live_childs_resident_memory():
    m = parse(render_metrics(hand_built()))
    assert m["mpmserver_responses_total"]["type"] == "counter"
    codes = {dict(k)["code"]: v for k, v in m["mpmserver_responses_total"]["samples"].items()}
    # every slot's, the free one's too (its counts outlive its children until a HUP)
    assert {c: n for c, n in codes.items() if n} == {"200": 36, "404": 1, "408": 1, "500": 1, "other": 1}
    assert "503" in codes and "other" in codes  # every series, at 0 until counted
    rss = m["mpmserver_child_resident_memory_bytes"]
    assert rss["type"] == "gauge"
    assert rss["samples"] == {(("slot", "0"), ("pid", "100")): 48 << 20, (("slot", "1"), ("pid", "101")): 52 << 20}


def test_a_real_scoreboards_responses_are_counted_from_every_writer():
    board = Scoreboard.create(2, 2)
    try:
        w = board.worker(1, 0)
        w.thread_started(1, 1, 0)
        w.begin_request(b"GET / HTTP/1.1")
        w.end_request(10, 200)
        w.end_request(10, 503)
        board.process(0).response_codes[sbm.response_cell(400)] += 1
        m = parse(render_metrics(board.snapshot(responses=True)))
        assert value(m, "mpmserver_responses_total", code="200") == 1
        assert value(m, "mpmserver_responses_total", code="503") == 1
        assert value(m, "mpmserver_responses_total", code="400") == 1
    finally:
        board.close()
