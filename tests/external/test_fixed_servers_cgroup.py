"""FixedServers auto under a real cgroup CPU quota, as a container's
--cpus sets one: a server started in a cgroup limited to fewer CPUs than
its affinity mask runs one child per CPU of the quota. Needs root (to make
a cgroup) and a writable cpu controller (cgroup v1's cpu hierarchy, or v2's
cpu.max); skipped with the reason otherwise."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mpmserver.config import CGROUP_ROOT
from tests.support.client import get
from tests.support.server import ROOT, alive, children_of, free_port, wait_for

pytestmark = pytest.mark.root

PERIOD = 100000


def make_cgroup(cpus: float) -> tuple[Path, str]:
    """A new cgroup below this process's, limited to cpus; (its directory, its procs file)."""
    text = Path("/proc/self/cgroup").read_text()
    name = f"mpmserver-test-{uuid.uuid4().hex[:8]}"
    for line in text.splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):  # v1
            d = Path(CGROUP_ROOT, controllers, path.lstrip("/"), name)
            d.mkdir()
            (d / "cpu.cfs_period_us").write_text(str(PERIOD))
            (d / "cpu.cfs_quota_us").write_text(str(int(cpus * PERIOD)))
            return d, str(d / "cgroup.procs")
    for line in text.splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0":  # v2 (unified at the root, or beside v1 at unified/)
            top = Path(CGROUP_ROOT, "unified") if Path(CGROUP_ROOT, "unified").is_dir() else Path(CGROUP_ROOT)
            d = top / path.lstrip("/") / name
            d.mkdir()
            if not (d / "cpu.max").exists():
                d.rmdir()
                raise OSError("the cpu controller is not enabled below this process's cgroup")
            (d / "cpu.max").write_text(f"{int(cpus * PERIOD)} {PERIOD}")
            return d, str(d / "cgroup.procs")
    raise OSError("no cgroup with a cpu controller")


@pytest.fixture
def limited():
    if os.geteuid() != 0:
        pytest.skip("needs root to make a cgroup")
    affinity = len(os.sched_getaffinity(0))
    if affinity < 2:
        pytest.skip("one CPU: a quota cannot lower FixedServers auto's count below 1")
    cpus = affinity - 1.5 if affinity > 2 else 1.0  # 2.5 of 4 CPUs: 3 children; 1 of 2: 1
    try:
        d, procs = make_cgroup(cpus)
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup with a CPU quota here: {exc}")
    yield procs, math.ceil(cpus)
    d.rmdir()  # empty by then: the test reaped every process it started there


def test_auto_counts_the_cgroup_quota(limited):
    procs, expected = limited
    port = free_port()

    def enter():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    proc = subprocess.Popen([sys.executable, "-m", "mpmserver", "tests.apps.basic:app", "-w", "auto",
                             "--threads", "2", "--listen", f"127.0.0.1:{port}", "--access-log", "off"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=enter, start_new_session=True)
    try:
        wait_for(lambda: _answers(port), timeout=30, what="the server to serve")
        wait_for(lambda: len([p for p in children_of(proc.pid) if alive(p)]) == expected, timeout=30,
                 what=f"{expected} children")
        assert Path(procs).read_text().split().count(str(proc.pid)) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = proc.stdout.read()
    assert f"{expected} {'child' if expected == 1 else 'children'} x 2 threads (fixed)" in out, out
    wait_for(lambda: not Path(procs).read_text().strip(), timeout=15, what="the cgroup to empty")


def _answers(port: int) -> bool:
    try:
        return get(port, "/hello", timeout=2)[0] == 200
    except OSError:
        return False
