"""AgentListen: HAProxy's agent-check answered from the scoreboard (issue 13, item 5).

The answer is a pure function of a scoreboard snapshot (a real server answering
probes: tests/server/test_agent_served.py; a real HAProxy following the weight:
tests/external/test_agent_haproxy.py).
"""

from __future__ import annotations

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


