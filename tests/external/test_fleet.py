"""The fleet test (issue 13): two hosts behind a real HAProxy, under steady load.

Each host is a network namespace made by the test, joined to the root
namespace by a veth pair with addresses in a private /30 that exist only on
those two ends. An mpmserver runs in each (HealthPath, AgentListen,
GracefulStopDrain, PidFile); HAProxy runs in the root namespace with an HTTP
health check on the health path and the agent-check, and `mpmserver bench`
drives steady load through it on 127.0.0.1 while the test does, in order:

1. a binary upgrade of host 1 (`mpmserver -k upgrade -f CONF` in its namespace),
2. a rolling graceful restart of host 2 (USR1),
3. a graceful stop with drain of host 1 (WINCH), then a fresh start of it, with
   a slow app,
4. a window where host 1 is slow: its busy threads lower its agent weight, and
   HAProxy's per-server session counts must follow those weights.

Then: the load generator saw no failed request and no status but 200. Every
process in the namespaces, HAProxy, the load generator, the namespaces and
the veth ends go, whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import haproxy
from tests.support.server import ROOT, alive, children_of, free_port, wait_for

pytestmark = [pytest.mark.external, pytest.mark.root]  # HAProxy, iproute2, network namespaces

IP = shutil.which("ip") or (os.path.exists("/usr/sbin/ip") and "/usr/sbin/ip")

BENCH_SECONDS = 22      # the whole sequence runs within the load generator's run
CONNECTIONS = 8
SLOW_DELAY = 0.1        # seconds per request of the slow host
SLOW_WINDOW = 6.0       # seconds over which the split is compared with the weights


def _why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if not IP:
        return "the ip command (iproute2) is not installed"
    if not haproxy.HAPROXY:
        return haproxy.MISSING
    name = f"mpmfleetprobe{os.getpid()}"
    done = subprocess.run([IP, "netns", "add", name], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return f"ip netns add failed here: {done.stderr.strip()}"
    subprocess.run([IP, "netns", "del", name], capture_output=True, timeout=30)
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


class Host:
    """A network namespace with one veth pair: ROOT_ADDR on the root side, ADDR inside."""

    def __init__(self, index: int, tmp: Path):
        tag = f"{os.getpid() % 100000}h{index}"
        self.name = f"h{index}"
        self.ns = f"mpmfleet{tag}"
        self.veth_root, self.veth_ns = f"mfr{tag}", f"mfn{tag}"
        # 10.213.X.0/30 (host 1) and 10.213.X.4/30 (host 2): .1 root side, .2 inside.
        base = f"10.213.{os.getpid() % 250}.{4 * (index - 1)}"
        prefix, last = base.rsplit(".", 1)
        self.root_addr, self.addr = f"{prefix}.{int(last) + 1}", f"{prefix}.{int(last) + 2}"
        self.tmp = tmp
        self.conf = tmp / f"{self.name}.conf"
        self.pid_file = tmp / f"{self.name}.pid"
        self.error_log = tmp / f"{self.name}.error.log"
        self.procs: list[subprocess.Popen] = []
        self.files: list = []

    def create(self) -> None:
        ip("netns", "add", self.ns)
        ip("link", "add", self.veth_root, "type", "veth", "peer", "name", self.veth_ns)
        ip("link", "set", self.veth_ns, "netns", self.ns)
        ip("addr", "add", f"{self.root_addr}/30", "dev", self.veth_root)
        ip("link", "set", self.veth_root, "up")
        ip("-n", self.ns, "addr", "add", f"{self.addr}/30", "dev", self.veth_ns)
        ip("-n", self.ns, "link", "set", self.veth_ns, "up")
        ip("-n", self.ns, "link", "set", "lo", "up")

    def write_conf(self, delay: float = 0.0) -> None:
        self.conf.write_text(
            f"Listen {self.addr}:8000\n"
            f'WSGIApp tests.apps.fleet_app:create_app("{self.name}",delay={delay})\n'
            f"AgentListen {self.addr}:9999\n"
            "HealthPath /healthz\n"
            "GracefulStopDrain 2\n"
            f"PidFile {self.pid_file}\n"
            f"ErrorLog {self.error_log}\n"
            "LogLevel info\n"
            "FixedServers 2\nThreadsPerChild 4\nMaxRequestWorkers 8\n")

    def exec(self, *cmd: str) -> list[str]:
        return [IP, "netns", "exec", self.ns, *cmd]

    def start(self) -> subprocess.Popen:
        """`ip netns exec NS python -m mpmserver -f CONF` (ip execs: the Popen is the master)."""
        out = open(self.tmp / f"{self.name}.{len(self.procs)}.out", "wb")
        self.files.append(out)
        proc = subprocess.Popen(self.exec(sys.executable, "-m", "mpmserver", "-f", str(self.conf)), cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def master(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        """Its HealthPath answers 200 (from the root namespace, over the veth pair)."""
        try:
            with socket.create_connection((self.addr, 8000), timeout=2) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def serving_children(self, master: int) -> set[int]:
        return {p for p in children_of(master) if alive(p)}

    def log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self) -> None:
        """Every process in the namespace (by pid), the namespace, the veth ends."""
        done = ip("netns", "pids", self.ns, check=False)
        pids = [int(p) for p in done.stdout.split()] if done.returncode == 0 else []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for f in self.files:
            f.close()
        ip("netns", "del", self.ns, check=False)        # takes the inner veth end, and so its peer
        ip("link", "del", self.veth_root, check=False)  # in case the namespace never got it


def haproxy_config(stats: str, port: int, hosts: list[Host]) -> str:
    servers = "\n".join(
        f"    server {h.name} {h.addr}:8000 weight 100 check inter 200ms fall 1 rise 1"
        f" agent-check agent-port 9999 agent-inter 200ms" for h in hosts)
    return f"""
global
    stats socket {stats} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{servers}
"""


def test_fleet_upgrade_restart_drain_and_agent_weights_under_load(tmp_path):
    why_not = _why_no_namespaces()  # here, not at collection: it makes (and removes) a namespace
    if why_not:
        pytest.skip(why_not)
    hosts = [Host(1, tmp_path), Host(2, tmp_path)]
    h1, h2 = hosts
    stats = str(tmp_path / "haproxy.stats")
    fe_port = free_port()
    proxy = bench = None
    bench_out = tmp_path / "bench.json"
    steps: list[str] = []
    t0 = time.monotonic()

    def step(text: str) -> None:
        steps.append(f"{time.monotonic() - t0:6.2f}s {text}")

    def stat() -> dict[str, dict[str, str]]:
        try:
            return haproxy.show_stat(stats)
        except (OSError, KeyError):
            return {}

    def server_is(name: str, prefix: str, weight: str | None = None) -> bool:
        row = stat().get(name, {})
        return row.get("status", "").startswith(prefix) and (weight is None or row.get("weight") == weight)

    try:
        for h in hosts:
            h.create()
            h.write_conf()
            h.start()
        for h in hosts:
            wait_for(lambda: h.healthy() or h.procs[-1].poll() is not None, 20, 0.05, f"{h.name} to serve")
            assert h.procs[-1].poll() is None, h.log()
        (tmp_path / "haproxy.cfg").write_text(haproxy_config(stats, fe_port, hosts))
        proxy = haproxy.start(str(tmp_path / "haproxy.cfg"), stderr=open(tmp_path / "haproxy.err", "wb"))
        wait_for(lambda: all(server_is(h.name, "UP", "100") for h in hosts), 15, 0.05,
                 "HAProxy to see both hosts UP with weight 100")
        step("both hosts UP, weight 100; load starts")

        bench = subprocess.Popen(
            [sys.executable, "-m", "mpmserver", "bench", f"http://127.0.0.1:{fe_port}/", "-c", str(CONNECTIONS),
             "-d", str(BENCH_SECONDS), "--warmup", "0", "--timeout", "10", "--json", "--no-progress"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=open(bench_out, "wb"),
            stderr=open(tmp_path / "bench.err", "wb"), start_new_session=True)
        base = {n: int(r["stot"]) for n, r in stat().items() if n in ("h1", "h2")}
        wait_for(lambda: all(int(stat()[h.name]["stot"]) > base[h.name] + 200 for h in hosts), 15, 0.05,
                 "both hosts to take load")
        step("both hosts take load")

        # 1. Binary upgrade of host 1, inside its namespace.
        old1 = h1.master()
        upgraded = subprocess.run(h1.exec(sys.executable, "-m", "mpmserver", "-k", "upgrade", "-f", str(h1.conf)),
                                  cwd=ROOT, capture_output=True, text=True, timeout=90)
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        new1 = h1.master()
        assert f"upgraded: pid {old1} -> pid {new1}" in upgraded.stdout
        assert h1.procs[0].wait(20) == 0  # the old master stops once the new one serves
        step(f"h1 binary upgrade: pid {old1} -> {new1}")

        # 2. Rolling graceful restart of host 2.
        master2 = h2.master()
        old_children = h2.serving_children(master2)
        os.kill(master2, signal.SIGUSR1)
        wait_for(lambda: len(kids := h2.serving_children(master2)) >= 2 and not kids & old_children, 20, 0.05,
                 "host 2's children to be all new")
        step("h2 graceful restart (USR1): every child replaced")

        # 3. Graceful stop with drain of host 1, then a fresh start, with a slow app.
        os.kill(new1, signal.SIGWINCH)
        wait_for(lambda: stat().get("h1", {}).get("status", "").startswith(("DRAIN", "DOWN", "MAINT")),
                 10, 0.02, "HAProxy to take host 1 out of rotation during the drain")
        step(f"h1 graceful stop (WINCH): HAProxy says {stat()['h1']['status']} during the drain")
        wait_for(lambda: not alive(new1), 20, 0.05, "host 1's master to exit after the drain")
        step("h1 stopped")
        h1.write_conf(delay=SLOW_DELAY)
        h1.start()
        wait_for(lambda: server_is("h1", "UP"), 20, 0.05, "HAProxy to take the fresh host 1 back")
        step(f"h1 fresh start with a {SLOW_DELAY}s app: UP")

        # 4. Host 1 is slow: its agent weight drops, and the split follows it. In each short
        # interval HAProxy shares the new sessions by the weights in force at its start, so
        # the sessions host 1 should get are the sum of each interval's sessions times its
        # weight share; the weights' plain time average would overstate a host that is
        # slow exactly while it holds a high weight.
        samples = []  # (weight h1, weight h2, sessions h1, sessions h2)
        end = time.monotonic() + SLOW_WINDOW
        while time.monotonic() < end:
            rows = stat()
            if rows:
                samples.append(tuple(int(rows[n][f]) for f in ("weight", "stot") for n in ("h1", "h2")))
            time.sleep(0.05)
        assert bench.poll() is None, "the sequence took longer than the load: make BENCH_SECONDS longer"
        step("slow window done")
        expected = got = total = 0.0
        for (w1, w2, s1, s2), (_, _, n1, n2) in zip(samples, samples[1:]):
            d1, d2 = n1 - s1, n2 - s2
            total += d1 + d2
            got += d1
            expected += (d1 + d2) * (w1 / (w1 + w2) if w1 + w2 else 0.5)
        d1, d2 = samples[-1][2] - samples[0][2], samples[-1][3] - samples[0][3]
        share, expected_share = got / total, expected / total
        mean_w1 = sum(x[0] for x in samples) / len(samples)
        mean_w2 = sum(x[1] for x in samples) / len(samples)

        assert bench.wait(BENCH_SECONDS + 30) == 0, (tmp_path / "bench.err").read_text()
        rep = json.loads(bench_out.read_text().strip().splitlines()[-1])
        final = stat()
        step("load done")
        summary = {
            "requests": rep["responses"], "errors": rep["errors_total"], "status": rep["status"],
            "requests_per_s": round(rep["requests_per_s"], 1),
            "sessions": {n: int(final[n]["stot"]) for n in ("h1", "h2")},
            "haproxy_retries": {n: int(final[n]["wretr"] or 0) for n in ("h1", "h2")},
            "haproxy_redispatches": {n: int(final[n]["wredis"] or 0) for n in ("h1", "h2")},
            "slow_window": {"h1_sessions": d1, "h2_sessions": d2, "h1_share": round(share, 3),
                            "h1_share_from_weights": round(expected_share, 3), "mean_weight_h1": round(mean_w1, 1),
                            "mean_weight_h2": round(mean_w2, 1), "samples": len(samples)},
            "steps": steps,
        }
        print("fleet:", json.dumps(summary, indent=1))
        (tmp_path / "fleet-summary.json").write_text(json.dumps(summary, indent=1))

        assert rep["errors_total"] == 0, rep["error_examples"]
        assert set(rep["status"]) == {"200"}, rep["status"]
        assert rep["responses"] > 1000
        # The agent lowered the slow host's weight, and HAProxy's split followed the weights.
        assert mean_w1 < 0.5 * mean_w2, summary["slow_window"]
        assert share < 0.35, summary["slow_window"]
        # Within 5 points, as docs/deployment.md states: runs here land 2-2.5 points
        # under the weights' share (a weight can drop between two 50 ms samples).
        assert abs(share - expected_share) < 0.05, summary["slow_window"]
    finally:
        if bench is not None and bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait(10)
        if proxy is not None:
            haproxy.stop(proxy)
        for h in hosts:
            h.destroy()
        print("\n".join(steps))
    for h in hosts:
        assert ip("netns", "pids", h.ns, check=False).returncode != 0, f"namespace {h.ns} left behind"
