"""FixedServers auto: one child per CPU the process may use (its affinity,
bounded by cgroup CPU quotas), as a container's pool should be sized."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpmserver import config as C
from mpmserver.config import ConfigError, load

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("affinity, quotas, cpus", [
    (4, [], 4),                                   # no cgroup quota: the affinity mask
    (4, [(-1, 100000)], 4),                       # "max": no quota
    (4, [(150000, 100000)], 2),                   # 1.5 CPUs keep 2 children busy
    (4, [(100000, 100000)], 1),
    (4, [(50000, 100000)], 1),                    # half a CPU: still one child
    (2, [(400000, 100000)], 2),                   # a quota above the mask: the mask
    (8, [(-1, 100000), (300000, 100000), (600000, 100000)], 3),  # the tightest ancestor
    (0, [], 1),
])
def test_cpus_from_affinity_and_quotas(affinity, quotas, cpus):
    assert C.cpus_from(affinity, quotas) == cpus


def test_cpu_max_is_read_as_cgroup_v2_writes_it():
    assert C.parse_cpu_max("max 100000\n") == (-1, 100000)
    assert C.parse_cpu_max("150000 100000\n") == (150000, 100000)
    assert C.parse_cpu_max("200000") == (200000, 100000)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quotas_of_the_group_and_its_ancestors(tmp_path):
    _write(tmp_path / "cpu.max", "max 100000\n")
    _write(tmp_path / "kubepods" / "cpu.max", "300000 100000\n")
    _write(tmp_path / "kubepods" / "pod1" / "cpu.max", "150000 100000\n")
    quotas = C.cgroup_quotas("0::/kubepods/pod1\n", root=str(tmp_path))
    assert quotas == [(150000, 100000), (300000, 100000), (-1, 100000)]
    assert C.cpus_from(8, quotas) == 2


def test_cgroup_v2_in_a_container_namespace(tmp_path):
    # Docker with a cgroup namespace: the container's own group is "/".
    _write(tmp_path / "cpu.max", "100000 100000\n")
    assert C.cpus_from(4, C.cgroup_quotas("0::/\n", root=str(tmp_path))) == 1


def test_cgroup_v1_cfs_quota(tmp_path):
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "200000\n")
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    assert C.cpus_from(16, C.cgroup_quotas(text, root=str(tmp_path))) == 2


def test_no_cgroup_files_no_quota(tmp_path):
    assert C.cgroup_quotas("0::/user.slice\n", root=str(tmp_path)) == []
    assert C.cgroup_quotas("", root=str(tmp_path)) == []


def test_auto_in_a_file_and_as_gunicorns_flag(tmp_path):
    conf = tmp_path / "mpm.conf"
    conf.write_text("FixedServers auto\nThreadsPerChild 4\n")
    cfg, _ = load(str(conf))
    assert cfg.fixed_servers == C.available_cpus() >= 1
    assert cfg.start_servers == cfg.fixed_servers
    cfg, _ = load(None, [("FixedServers", ["AUTO"])])
    assert cfg.fixed_servers == C.available_cpus()


def test_auto_follows_the_affinity_mask():
    # A real process pinned to one CPU (taskset -c 0): auto gives one child.
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]});"
            "from mpmserver.config import load; print(load(None, [('FixedServers', ['auto'])])[0].fixed_servers)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_a_bad_value_names_the_directive(tmp_path):
    conf = tmp_path / "mpm.conf"
    conf.write_text("FixedServers automatic\n")
    with pytest.raises(ConfigError, match=r"line 1 of .*FixedServers"):
        load(str(conf))


def test_available_cpus_matches_this_machine():
    assert 1 <= C.available_cpus() <= len(os.sched_getaffinity(0))
