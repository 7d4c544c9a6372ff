"""`mpmserver bench --app`: starts the server, loads it, stops it and reports
what the scoreboard saw."""

import json
import subprocess
import sys

import pytest

from mpmserver.bench.workloads import repo_root

ROOT = repo_root()
pytestmark = pytest.mark.skipif(ROOT is None, reason="needs the checkout's benchmarks/apps.py")


def test_app_mode_reports_the_scoreboard():
    out = subprocess.run(
        [sys.executable, "-m", "mpmserver", "bench", "--app", "benchmarks.apps:app", "/sleep",
         "-c", "6", "-d", "1", "--warmup", "0.3", "--json",
         "--start-servers", "2", "--threads-per-child", "4", "--min-spare-threads", "1",
         "--max-spare-threads", "16", "--max-request-workers", "8"],
        capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["requests"] == rep["responses"] + rep["errors_total"]
    assert rep["errors_total"] == 0 and rep["responses"] > 100
    assert rep["directives"][:2] == ["--start-servers", "2"]
    s = rep["server"]
    assert "unavailable" not in s, s
    assert s["samples"] >= 8                       # about ten a second
    assert s["children_started"] == 2 and s["children_recycled"] == 0
    assert s["worker_slots"] == 8
    # Six connections each waiting 10 ms per request keep most workers busy.
    assert 3 <= s["peak_busy"] <= 8
    assert 0 <= s["idle_min"] <= s["idle_max"] <= 8
    # The server's memory after the load: the master and its two children.
    m = rep["memory"]
    assert m["processes"] == 3
    assert 10 << 20 < m["pss"] < m["rss"] < 1 << 30


def test_app_mode_says_why_the_server_did_not_start():
    out = subprocess.run(
        [sys.executable, "-m", "mpmserver", "bench", "--app", "no_such_module_xyz:app",
         "-d", "1", "--server-timeout", "20"],
        capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 1
    assert "mpmserver bench: mpmserver exited" in out.stderr
    assert "no_such_module_xyz" in out.stderr


def test_readme_example_directives_after_app_are_directives_not_the_path():
    # docs/benchmarking.md: mpmserver bench --app myapp:app -c 64 -d 10 --threads-per-child 8 --start-servers 2
    out = subprocess.run(
        [sys.executable, "-m", "mpmserver", "bench", "--app", "benchmarks.apps:app", "-c", "64", "-d", "1",
         "--threads-per-child", "8", "--start-servers", "2", "--json", "--warmup", "0.2"],
        capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["url"].endswith("/") and rep["directives"] == ["--threads-per-child", "8", "--start-servers", "2"]
    assert rep["responses"] > 0 and rep["errors_total"] == 0


def test_split_directives_takes_each_flag_with_its_values():
    from mpmserver.bench.cli import build_parser, split_directives

    mine, theirs = split_directives(
        ["/x", "-c", "4", "--threads-per-child", "8", "-w", "2", "--timeout", "3", "--status-allow", "10.0.0.0/8",
         "::1", "--custom-log", "-", "combined", "--listen-backlog=9"], build_parser())
    assert mine == ["/x", "-c", "4", "--timeout", "3"]
    assert theirs == ["--threads-per-child", "8", "-w", "2", "--status-allow", "10.0.0.0/8", "::1",
                      "--custom-log", "-", "combined", "--listen-backlog=9"]
