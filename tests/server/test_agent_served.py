"""The agent-check port (AgentListen) on a real server: the master answers probes from the scoreboard."""

from __future__ import annotations

import signal
import socket

from tests.support.load import occupy
from tests.support.server import free_port, wait_for


def probe(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = b""
        while chunk := s.recv(100):
            data += chunk
        return data


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
