"""HAProxy's agent-check against a real server: the weight follows the agent's answers."""

from __future__ import annotations

import signal

import pytest

from tests.support import haproxy
from tests.support.load import occupy
from tests.support.server import free_port, wait_for

pytestmark = pytest.mark.external


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
