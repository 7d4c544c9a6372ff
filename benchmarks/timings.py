#!/usr/bin/env python3
"""The wall-clock figures the pass/fail tests no longer assert (issue 22).

    python benchmarks/timings.py                  # each timed test 5 times, one at a time
    python benchmarks/timings.py --runs 9 --only sibling
    python benchmarks/timings.py --external       # with the wrk agreement (needs wrk)

A test on a shared machine asserts the behaviour: the sibling answered while
the busy child's only worker slept, the probes were answered while every
slow upload was still arriving, the master did not spin. How fast that
happened is a figure: each of these tests records it (tests/support/timing.py)
with the target it once asserted. This runs each test --runs times, alone
(no xdist), reads the figures from pytest's JUnit XML, and prints per figure
the median, the slowest run and the target; it exits 1 when a median misses
its target. A benchmark, not a test: run it by hand on an otherwise idle
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The tests that record a timing; external ones need components outside Python.
TIMED = [
    "tests/server/test_sibling_transfer.py::test_parked_request_in_a_busy_child_is_answered_by_its_idle_sibling",
    "tests/server/test_slow_bodies.py::test_slow_uploads_do_not_keep_new_clients_waiting",
    "tests/server/test_write_completion.py::test_fifty_slow_readers_hold_no_worker_and_probes_are_answered",
    "tests/server/test_write_completion.py::test_a_reader_that_stops_reading_is_dropped_after_timeout",
    "tests/server/test_master_exits.py::test_master_sleeps_while_children_finish_a_graceful_stop",
    "tests/bench/test_bench_cli.py::test_one_second_run_counts_add_up_and_schema",
    "tests/server/test_http.py::test_tcp_nodelay_small_responses_are_not_delayed",
    "tests/server/test_mpm.py::test_app_failing_at_import_stops_the_server",
]
EXTERNAL = [
    "tests/external/test_bench_wrk.py::test_bench_and_wrk_measure_the_same_rate",
]


def run_once(node: str) -> tuple[bool, list[dict]]:
    """Run one test alone: (passed, the timings it recorded)."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "junit.xml")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS"))}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                               f"--junitxml={xml}", "-o", "junit_family=xunit1", node],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        found = []
        if os.path.exists(xml):
            for prop in ET.parse(xml).iter("property"):
                if prop.get("name") == "timing":
                    found.append(json.loads(prop.get("value")))
        return done.returncode == 0, found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs of each test (default 5)")
    ap.add_argument("--only", default="", help="only the tests whose id contains this")
    ap.add_argument("--external", action="store_true", help="also the tests that need wrk")
    args = ap.parse_args()
    nodes = [n for n in TIMED + (EXTERNAL if args.external else []) if args.only in n]
    figures: dict[str, dict] = {}
    failed = []
    for node in nodes:
        for i in range(args.runs):
            ok, found = run_once(node)
            if not ok:
                failed.append(f"{node} (run {i + 1})")
            for t in found:
                one = figures.setdefault(t["figure"], {"unit": t["unit"], "target": t["target"], "values": []})
                one["values"].append(t["value"])
    missed = 0
    print(f"{'figure':<78} {'median':>9} {'slowest':>9} {'target':>9}  runs")
    for name, one in figures.items():
        median, worst = statistics.median(one["values"]), max(one["values"])
        mark = "" if median < one["target"] else "  MISSED"
        missed += bool(mark)
        print(f"{name:<78} {median:>9.4g} {worst:>9.4g} {one['target']:>9g}  {len(one['values'])} "
              f"({one['unit']}){mark}")
    for f in failed:
        print(f"failed: {f}")
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
