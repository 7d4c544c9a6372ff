"""AgentListen's socket: the master answers HAProxy's agent-check on it.

The mechanism only: accept what has queued, send agent.agent_answer()'s
line, close. What the line says is agent.py's (pure). The master watches
``sock`` in its select loop, so a probe never reaches a child or a worker.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

from ..deploy.listen import bind_agent
from .agent import agent_answer

__all__ = ["AgentListen"]

# Probes answered per wake-up of the master's loop; the rest wake it again.
BATCH = 64


class AgentListen:
    def __init__(self, sock: socket.socket, warn: Callable[[str], None]) -> None:
        self.sock = sock
        self.warn = warn

    @classmethod
    def open(cls, addr: Any, passed_fd: int, warn: Callable[[str], None]) -> "AgentListen | None":
        """The AgentListen socket for ``addr`` (None: no AgentListen; a
        socket passed by an old master is reused when bound to ``addr``)."""
        if addr is None:
            if passed_fd >= 0:
                os.close(passed_fd)  # the new configuration has no AgentListen
            return None
        sock = bind_agent(addr, passed_fd)
        sock.setblocking(False)
        return cls(sock, warn)

    def fileno(self) -> int:
        return self.sock.fileno()

    def answer(self, snap: Any, threads_per_child: int, max_children: int, going_away: str | None) -> None:
        """One line per queued probe, then close."""
        line = agent_answer(snap, threads_per_child, max_children, going_away)
        for _ in range(BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.warn(f"AgentListen: accept: {exc}")
                return
            try:
                conn.setblocking(False)
                conn.send(line)
                try:
                    conn.recv(4096)  # whatever agent-send sent: unread, close would reset
                except OSError:
                    pass
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()
