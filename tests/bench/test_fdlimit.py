"""The tests' descriptor-limit helper, in a child process (limits are per process)."""

import resource
import subprocess
import sys

import pytest

from tests.support.server import ROOT

HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
needs_room = pytest.mark.skipif(
    HARD != resource.RLIM_INFINITY and HARD < 4096,
    reason=f"the hard limit on file descriptors is {HARD}: these tests raise the soft limit to 4096 "
           "(raise it with `ulimit -Hn 4096` as root, or in /etc/security/limits.conf)")


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@needs_room
def test_soft_limit_of_1024_is_raised_to_the_hard_limit():
    out = run("import resource; from tests.support.fdlimit import raise_nofile\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))\n"
              "print(raise_nofile(1300), resource.getrlimit(resource.RLIMIT_NOFILE))")
    assert out == "None (4096, 4096)"


def test_hard_limit_too_low_gives_a_reason_to_skip():
    out = run("import resource; from tests.support.fdlimit import raise_nofile\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))\n"
              "print(raise_nofile(1300))")
    assert "needs 1300 file descriptors but the hard limit is 1024" in out


@needs_room
def test_bench_smoke_with_1000_idle_connections_under_ulimit_1024():
    # The README's test command as a normal user with `ulimit -n 1024` (hard limit higher).
    code = ("import resource, sys, pytest\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:xdist',"
            " 'tests/bench/test_bench_smoke.py::test_workload_runs_clean[plaintext_1000_idle]']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout
