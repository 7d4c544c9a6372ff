"""benchmarks/compare.py's pure parts, and reading wrk's output."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from mpmserver.bench.wrk import parse_wrk

COMPARE = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"

WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18081/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.36ms    1.22ms  10.59ms   88.00%
    Req/Sec     6.82k     3.23k   10.83k    50.00%
  Latency Distribution
     50%  880.00us
     75%    1.58ms
     90%    2.80ms
     99%    1.02s
  6790 requests in 1.00s, 1.02MB read
  Socket errors: connect 0, read 28, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:   6782.42
Transfer/sec:      1.02MB
"""


def test_parse_wrk_output():
    r = parse_wrk(WRK_OUTPUT)
    assert r["requests_per_s"] == 6782.42
    assert r["latency_ms"] == {"p50": pytest.approx(0.88), "p75": 1.58, "p90": 2.80, "p99": 1020.0}
    assert r["requests"] == 6790 and r["duration_s"] == 1.0
    assert r["errors"] == {"connect": 0, "read": 28, "write": 0, "timeout": 2}
    assert r["non_2xx"] == 5


def test_parse_wrk_rejects_other_text():
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


@pytest.fixture(scope="module")
def compare():
    if not COMPARE.is_file():
        pytest.skip("benchmarks/compare.py is not in this checkout")
    spec = importlib.util.spec_from_file_location("bench_compare", COMPARE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def run(rps, p50=1.0, p99=5.0, errors=0):
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors}


def test_summary_uses_medians_and_ratios_to_mpmserver(compare):
    rows = compare.summarize({"mpmserver": [run(100), run(300), run(200)],
                              "gunicorn": [run(50, 2.0), run(150, 4.0), run(100, 3.0, errors=1)]})
    by = {r["server"]: r for r in rows}
    assert by["mpmserver"]["rps"] == 200 and by["mpmserver"]["ratio"] == 1.0
    assert by["gunicorn"]["rps"] == 100 and by["gunicorn"]["ratio"] == 0.5
    assert by["gunicorn"]["p50"] == 3.0 and by["gunicorn"]["errors"] == 1
    assert (by["gunicorn"]["rps_min"], by["gunicorn"]["rps_max"]) == (50, 150)


def test_without_mpmserver_ratios_are_undefined(compare):
    rows = compare.summarize({"waitress": [run(10)]})
    assert math.isnan(rows[0]["ratio"])


def test_tables(compare):
    rows = compare.summarize({"mpmserver": [run(1000)], "waitress": [run(800)]})
    md = compare.format_table(rows, markdown=True).splitlines()
    assert md[0].startswith("| server | req/s") and md[1].startswith("|---")
    assert "| waitress | 800 |" in md[3] and "0.80x" in md[3]
    text = compare.format_table(rows).splitlines()
    assert text[1].split()[:2] == ["mpmserver", "1000"] and "0.80x" in text[2]


def test_missing_peers_are_skipped_with_a_note(compare, monkeypatch):
    monkeypatch.setattr(compare.shutil, "which", lambda name: None)
    real = compare.importlib.util.find_spec
    monkeypatch.setattr(compare.importlib.util, "find_spec",
                        lambda name: None if name == "waitress" else real(name))
    ps = {p.name: p for p in compare.peers("benchmarks.apps:plaintext", 2, 4, lambda n: 1)}
    assert ps["mpmserver"].available
    assert not ps["uwsgi"].available and "not installed" in ps["uwsgi"].note
    assert not ps["waitress"].available and "pip install waitress" in ps["waitress"].note
    cmd = ps["mpmserver"].command
    assert cmd[cmd.index("--threads-per-child") + 1] == "4" and "--access-log" in cmd
