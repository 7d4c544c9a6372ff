"""AgentListen: HAProxy's agent-check answered from the scoreboard (issue 13, item 5).

The answer is a pure function of a scoreboard snapshot; then a real server
answers probes, and a real HAProxy follows the weight it is given.
"""

from __future__ import annotations

import signal
import socket
import threading

import pytest

from mpmserver import config as configmod
from mpmserver.modules.agent import agent_answer, free_capacity
from mpmserver.scoreboard import (
    SERVER_BUSY_WRITE,
    SERVER_DEAD,
    SERVER_READY,
    ProcessSnapshot,
    ScoreboardSnapshot,
    WorkerSnapshot,
)

from tests.support import haproxy
from tests.support.server import free_port, wait_for


def snapshot(*children: tuple[str, bool], server_limit: int = 4, generation: int = 0) -> ScoreboardSnapshot:
    """One child per (statuses, quiescing): "R" ready, "W" busy, "." dead; the rest of the slots empty."""
    codes = {"R": SERVER_READY, "W": SERVER_BUSY_WRITE, ".": SERVER_DEAD}
    procs = []
    for slot in range(server_limit):
        if slot < len(children):
            statuses, quiescing = children[slot]
            pid = 100 + slot
        else:
            statuses, quiescing, pid = "", False, 0
        workers = tuple(WorkerSnapshot(codes[c], pid, t, generation, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, "", "")
                        for t, c in enumerate(statuses))
        procs.append(ProcessSnapshot(slot, pid, generation, quiescing, False, 0, 0, workers))
    return ScoreboardSnapshot(server_limit, 4, generation, 0.0, 1, tuple(procs))


@pytest.mark.parametrize("children, max_children, percent", [
    ((), 4, 100),                                         # nothing started yet: all of it is free
    ((("RRRR", False), ("RRRR", False)), 4, 100),         # idle, and two more children may start
    ((("WWRR", False), ("WWWW", False)), 2, 25),          # 2 idle of 8
    ((("WWWW", False), ("WWWW", False)), 2, 1),           # full: 1%, never 0 (0 would refuse everyone)
    ((("WWWW", False), ("RRRR", True)), 2, 50),           # a quiescing child frees its slot, not its threads
    ((("WWRR", False),), 3, 83),                          # 2 idle + 2 free slots x 4: 10 of 12
])
def test_free_capacity(children, max_children, percent):
    assert free_capacity(snapshot(*children), 4, max_children) == percent


def test_answers_for_haproxy():
    snap = snapshot(("WWRR", False))
    assert agent_answer(snap, 4, 2, None) == b"up ready 75%\n"
    assert agent_answer(snap, 4, 2, "draining") == b"drain\n"
    assert agent_answer(snap, 4, 2, "stopping") == b"maint\n"


def test_agent_listen_directive():
    cfg, _ = configmod.load(None, [("AgentListen", ["127.0.0.1:9999"])])
    assert cfg.agent_listen == ("127.0.0.1", 9999)
    with pytest.raises(configmod.ConfigError, match="agent-check connects over TCP"):
        configmod.load(None, [("AgentListen", ["unix:/tmp/a.sock"])])


# --- with a real server ------------------------------------------------------------


def probe(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = b""
        while chunk := s.recv(100):
            data += chunk
        return data


def occupy(port: int, n: int, seconds: float) -> list[threading.Thread]:
    """``n`` requests that keep a worker thread busy for ``seconds``."""
    def one():
        with socket.create_connection(("127.0.0.1", port), timeout=seconds + 10) as s:
            s.sendall(f"GET /slow?t={seconds} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            while s.recv(4096):
                pass
    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def test_the_master_answers_probes_from_the_scoreboard(server_factory):
    agent_port = free_port()
    srv = server_factory("-w", "1", "--threads", "4", "--max-request-workers", "4",
                         "--agent-listen", f"127.0.0.1:{agent_port}", "--health-path", "/healthz",
                         "--graceful-stop-drain", "30").start()
    wait_for(lambda: probe(agent_port) == b"up ready 100%\n", 10, 0.05, "an idle server to say 100%")
    busy = occupy(srv.port, 3, 3)
    wait_for(lambda: probe(agent_port) == b"up ready 25%\n", 10, 0.05, "3 of 4 threads busy to say 25%")
    for t in busy:
        t.join(15)
    srv.signal(signal.SIGWINCH)
    wait_for(lambda: probe(agent_port) == b"drain\n", 10, 0.05, "the drain")
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(15) == 0


@pytest.mark.external
@pytest.mark.skipif(not haproxy.HAPROXY, reason=haproxy.MISSING)
def test_haproxy_weight_follows_the_agent(server_factory, tmp_path):
    agent_port = free_port()
    args = ("-w", "1", "--threads", "4", "--max-request-workers", "4",
            "--agent-listen", f"127.0.0.1:{agent_port}", "--graceful-stop-drain", "30")
    srv = server_factory(*args).start()
    stats = str(tmp_path / "haproxy.stats")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
global
    stats socket {stats} mode 600 level admin

defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s

frontend fe
    bind 127.0.0.1:{free_port()}
    default_backend be

backend be
    server s1 127.0.0.1:{srv.port} weight 100 agent-check agent-port {agent_port} agent-inter 200ms
""")
    proc = haproxy.start(str(cfg))
    try:
        def stat(field: str) -> str | None:
            try:
                return haproxy.show_stat(stats)["s1"][field]
            except (OSError, StopIteration, KeyError):
                return None
        wait_for(lambda: stat("weight") == "100", 15, 0.05, "HAProxy to give the idle server weight 100")
        busy = occupy(srv.port, 3, 4)
        wait_for(lambda: stat("weight") == "25", 10, 0.05, "the weight to follow 3 busy threads of 4 (25%)")
        for t in busy:
            t.join(15)
        wait_for(lambda: stat("weight") == "100", 10, 0.05, "the weight to come back to 100")
        srv.signal(signal.SIGWINCH)  # GracefulStopDrain: the agent says drain
        wait_for(lambda: (stat("status") or "").startswith("DRAIN"), 10, 0.05, "HAProxy to drain the server")
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(15) == 0
        # The next server on this host says "up ready": HAProxy leaves DRAIN.
        server_factory(*args, port=srv.port).start()
        # (status "no check": the server line has no health check, only the agent)
        wait_for(lambda: stat("status") == "no check" and stat("weight") == "100", 10, 0.05,
                 "HAProxy to take the restarted server back")
    finally:
        haproxy.stop(proc)
