"""Merging results, the report's figures and warnings, and scoreboard summaries."""

from collections import namedtuple

from mpmserver.bench.histogram import Histogram
from mpmserver.bench.load import LoadConfig, WorkerResult, build_request
from mpmserver.bench.report import format_text, summarize
from mpmserver.bench.runner import parse_url, plan, split_evenly
from mpmserver.bench.server import Sample, sample_from_snapshot, summarize_samples

META = {"url": "http://127.0.0.1:1/", "connections": 4, "pipeline": 1, "keepalive": True,
        "rate": None, "procs": 2, "event_loop": "uvloop"}


def result(values, status=200, cpu=0.5, errors=None, elapsed=2.0):
    h = Histogram()
    for v in values:
        h.record(v)
    r = WorkerResult(requests=len(values) + sum((errors or {}).values()), responses=len(values),
                     status={str(status): len(values)}, bytes_read=100 * len(values),
                     elapsed=elapsed, cpu_seconds=cpu * elapsed, histogram=h.to_dict())
    r.errors.update(errors or {})
    return r


def test_summary_merges_processes():
    rep = summarize([result([1000] * 300), result([3000] * 100, status=500, errors={"reset": 2})], META)
    assert rep["requests"] == 402 and rep["responses"] == 400 and rep["errors_total"] == 2
    assert rep["requests"] == rep["responses"] + rep["errors_total"]
    assert rep["status"] == {"200": 300, "500": 100}
    assert rep["requests_per_s"] == 200.0
    assert rep["transfer_bytes_per_s"] == 20_000.0
    assert abs(rep["latency_ms"]["p50"] - 1.0) <= 0.01 and rep["latency_ms"]["max"] == 3.0
    assert rep["generator_saturated"] is False and rep["warnings"] == []
    text = format_text(rep)
    assert "requests/s    200.0" in text and "reset 2" in text


def test_a_busy_generator_is_flagged():
    rep = summarize([result([1000] * 10, cpu=0.97)], META)
    assert rep["generator_saturated"] is True
    assert "bottleneck" in rep["warnings"][0] and "--procs 2" in rep["warnings"][0]


def test_open_loop_shortfall_is_flagged():
    rep = summarize([result([1000] * 100)], {**META, "rate": 1000.0})
    assert any("could not keep up" in w for w in rep["warnings"])


def test_plan_splits_connections_requests_and_phases():
    base = LoadConfig("h", 1, b"", connections=10, duration=None, requests=101, rate=50.0)
    cfgs = plan(base, 3)
    assert [c.connections for c in cfgs] == [4, 3, 3]
    assert [c.requests for c in cfgs] == [34, 34, 33]
    assert [c.first_connection for c in cfgs] == [0, 4, 7]
    assert all(c.total_connections == 10 for c in cfgs)
    assert len(plan(LoadConfig("h", 1, b"", 2, 1.0, None), 8)) == 2  # never an idle process
    assert split_evenly(5, 5) == [1] * 5


def test_parse_url_and_request_bytes():
    assert parse_url("http://127.0.0.1:8080/a/b?x=1") == ("127.0.0.1", 8080, "/a/b?x=1", "127.0.0.1:8080")
    assert parse_url("localhost") == ("localhost", 80, "/", "localhost")
    req = build_request("POST", "/e", "h:1", [("X-Key", "v")], b"abc", keepalive=False)
    assert req == (b"POST /e HTTP/1.1\r\nHost: h:1\r\nUser-Agent: mpmserver-bench\r\nX-Key: v\r\n"
                   b"Content-Length: 3\r\nConnection: close\r\n\r\nabc")


W = namedtuple("W", "status pid")
P = namedtuple("P", "slot pid workers")
S = namedtuple("S", "processes")


def test_sample_counts_busy_like_mod_status():
    snap = S((P(0, 11, (W(2, 11), W(3, 11), W(5, 11), W(4, 11))),
              P(1, 12, (W(1, 12), W(0, 0), W(9, 12), W(2, 12))),
              P(2, 0, (W(0, 0),) * 4)))
    s = sample_from_snapshot(1.0, snap)
    # R, K, W and G are busy; _ is idle; S is neither; dead slots do not count.
    assert (s.busy, s.idle, s.slots, s.pids) == (4, 2, 7, frozenset({11, 12}))


def test_summary_of_samples_children_started_and_recycled():
    samples = [Sample(0.0, 1, 7, 8, frozenset({1, 2})), Sample(0.5, 6, 2, 8, frozenset({1, 2})),
               Sample(1.2, 3, 5, 8, frozenset({2, 3})), Sample(2.1, 0, 8, 8, frozenset({3, 4}))]
    s = summarize_samples(samples)
    assert s["peak_busy"] == 6
    assert s["children_started"] == 4          # pids 1..4
    assert s["children_recycled"] == 2         # 1 and 2 went away
    assert s["idle_per_second"] == [2, 5, 8]   # each second's minimum
    assert (s["idle_min"], s["idle_max"]) == (2, 8)
    assert summarize_samples([])["unavailable"]
