"""CPU time of a server's processes, from /proc: what a server spends per
request end to end (benchmarks/compare.py divides it by the requests served).

A server under test runs in its own session (bench/server.py), so its
processes are those whose session id is the server's pid, whatever they are
called and whichever user they run as (Apache's children as www-data).
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat(text: str) -> tuple[int, int]:
    """(session id, utime + stime in clock ticks) from /proc/PID/stat.

    The command name (field 2) is in parentheses and may hold spaces or ')':
    the fields are counted from after its last ')'."""
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): session is field 6, utime 14, stime 15.
    return int(rest[3]), int(rest[11]) + int(rest[12])


def session_cpu_seconds(sid: int, proc: str = "/proc") -> float:
    """CPU seconds (user + system) of the live processes in session `sid`.
    Threads are counted in their process; processes that already exited are
    not (the pools measured here are fixed)."""
    ticks = 0
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat") as f:
                s, t = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue    # gone meanwhile, or not a process
        if s == sid:
            ticks += t
    return ticks / _TICKS
