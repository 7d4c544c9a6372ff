"""How long mpmserver.testing.serve() takes to return a server that accepts
requests (the fixed cost every test using `mpm_server` pays), and to stop it.

Run: python -m pytest -p no:cacheprovider benchmarks/test_startup.py --benchmark-only
Targets (issue 6): in-process under 100 ms, processes=2 under 500 ms.
"""

from __future__ import annotations

import urllib.request

import pytest

from benchmarks.apps import app
from mpmserver.testing import serve

MODES = {"in_process": {}, "processes_2": {"processes": 2}}


@pytest.mark.parametrize("mode", list(MODES))
def test_start(benchmark, mode):
    running = []

    def start():
        running.append(serve(app, **MODES[mode]))

    def stop():
        running.pop().stop()

    benchmark.pedantic(start, teardown=stop, rounds=30, warmup_rounds=2)


@pytest.mark.parametrize("mode", list(MODES))
def test_start_first_response_stop(benchmark, mode):
    """A whole test's overhead: start, one request answered, stop."""

    def cycle():
        with serve(app, **MODES[mode]) as server:
            with urllib.request.urlopen(server.url + "/plaintext", timeout=10) as r:
                assert r.status == 200

    benchmark.pedantic(cycle, rounds=30, warmup_rounds=2)
