"""Starting the new master of a binary upgrade: fork, place the descriptors, exec.

The mechanism only; what the new master is handed is upgrade.py's, when to
start it and what to do when it serves or fails is upgrade_takeover.py's.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import systemd, upgrade

__all__ = ["spawn_new_master"]


def spawn_new_master(argv: Sequence[str], listeners: Sequence[tuple[socket.socket, str, bool]],
                     ready_fd: int, agent_fd: int = -1, notify_socket: str | None = None,
                     cwd: str | None = None) -> int:
    """Fork and exec ``argv`` as the new master; its pid. ``listeners`` are
    (socket, name, bound by us) as listen.takeover_sockets() gives them.
    Raises OSError when the fork fails; a failed exec shows as the new
    master exiting with status 127, its reason on standard error. ``cwd``:
    the directory to exec in (where argv was first run, before any Chdir)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    try:
        if cwd is not None:
            os.chdir(cwd)
        _exec(argv, listeners, ready_fd, agent_fd, notify_socket)
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the old master must learn it
        try:
            os.write(2, f"mpmserver: cannot start the new master {' '.join(argv)}: {exc}\n".encode())
        finally:
            os._exit(127)


def _exec(argv: Sequence[str], listeners: Sequence[tuple[socket.socket, str, bool]], ready_fd: int,
          agent_fd: int, notify_socket: str | None) -> NoReturn:
    first = systemd.SD_LISTEN_FDS_START
    above = first + len(listeners)
    # Every descriptor to keep is first copied above the range LISTEN_FDS
    # takes (the copies are inheritable), so that placing the sockets at 3,
    # 4, ... cannot overwrite one still to be placed, nor the pipe.
    high = [fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD, above) for sock, _, _ in listeners]
    ready = fcntl.fcntl(ready_fd, fcntl.F_DUPFD, above)
    agent = fcntl.fcntl(agent_fd, fcntl.F_DUPFD, above) if agent_fd >= 0 else -1
    for i, fd in enumerate(high):
        os.dup2(fd, first + i)
        os.close(fd)
    env = upgrade.new_master_environ(
        os.environ, os.getpid(), [name for _, name, _ in listeners],
        [i for i, (_, _, ours) in enumerate(listeners) if ours], os.getppid(), ready, agent, notify_socket)
    os.execve(argv[0], list(argv), env)
    raise OSError("execve returned")  # not reached
