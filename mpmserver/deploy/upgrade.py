"""Zero-downtime binary upgrade (USR2), as data (pure).

nginx's and gunicorn's sequence: the old master renames its PidFile to
PidFile + ``.oldbin`` and starts a new master from the command line it was
started with (new code, new configuration). The new master inherits the
listening sockets, so the port never closes: they are passed the way systemd
passes them (``LISTEN_FDS``, ``LISTEN_PID``, ``LISTEN_FDNAMES``, descriptors
from 3, read by listen.py's socket activation), plus ``MPMSERVER_UPGRADE``,
which says which of them the old master bound itself (the new one now owns
those: it may close them on a restart and removes their unix socket files at
exit; sockets systemd passed stay systemd's), the descriptor of a pipe on
which the new master says "ok" once a child of its serves, and the
AgentListen socket. Then the old master stops gracefully; if the new master
exits before it serves, or does not serve within UPGRADE_TIMEOUT, the old one
writes its PidFile again and keeps serving (the rollback).

This module only formats and reads that takeover and judges, for
``mpmserver -k upgrade``, what it sees; upgrade_takeover.py starts the new
master and cli.py waits.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from . import systemd

__all__ = ["ENV", "OLDBIN", "UPGRADE_TIMEOUT", "Inherited", "oldbin_path", "command_line",
           "new_master_environ", "take_environ", "ready_message", "served_by", "outcome"]

ENV = "MPMSERVER_UPGRADE"
OLDBIN = ".oldbin"
# How long the old master waits for a child of the new one to serve before it
# stops the new master and keeps serving itself.
UPGRADE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Inherited:
    """What a new master is handed: the old master's pid, the descriptor to
    say "ok" on, the descriptors among LISTEN_FDS the old master bound itself,
    and the AgentListen socket's descriptor (-1: none)."""
    old_pid: int
    ready_fd: int
    owned: frozenset[int]
    agent_fd: int = -1


def oldbin_path(pid_file: str) -> str:
    return pid_file + OLDBIN


def command_line(executable: str, orig_argv: Sequence[str]) -> list[str]:
    """The command that started this process, to start the new master with:
    the interpreter that runs us, then the arguments it was given (``-m
    mpmserver ...`` or the ``mpmserver`` script and its arguments)."""
    return [executable, *orig_argv[1:]]


def new_master_environ(environ: Mapping[str, str], pid: int, names: Sequence[str], owned: Sequence[int],
                       old_pid: int, ready_fd: int, agent_fd: int = -1,
                       notify_socket: str | None = None) -> dict[str, str]:
    """The environment of the new master, whose pid is ``pid``, receiving
    ``len(names)`` listening sockets at descriptors 3 onwards; ``owned`` are
    the indexes (0-based) of those the old master bound itself."""
    env = {k: v for k, v in environ.items() if k not in systemd.ACTIVATION_VARIABLES and k != ENV}
    if names:
        env["LISTEN_FDS"] = str(len(names))
        env["LISTEN_PID"] = str(pid)
        env["LISTEN_FDNAMES"] = ":".join(names)
    fds = ",".join(str(systemd.SD_LISTEN_FDS_START + i) for i in owned)
    env[ENV] = f"pid={old_pid} ready={ready_fd} owned={fds} agent={agent_fd}"
    if notify_socket:
        env["NOTIFY_SOCKET"] = notify_socket
    return env


def take_environ(environ: MutableMapping[str, str]) -> Inherited | None:
    """Read and unset MPMSERVER_UPGRADE: None when this master was not
    started by a binary upgrade. Raises ValueError saying what is wrong."""
    value = environ.pop(ENV, None)
    if value is None:
        return None
    try:
        fields = dict(item.split("=", 1) for item in value.split())
        owned = frozenset(int(fd) for fd in fields.get("owned", "").split(",") if fd)
        return Inherited(int(fields["pid"]), int(fields["ready"]), owned, int(fields.get("agent", "-1")))
    except (KeyError, ValueError):
        raise ValueError(f"{ENV}={value!r} is not what an mpmserver master passes to its successor "
                         "(pid=N ready=FD owned=FD,... agent=FD); unset it") from None


def ready_message(pid: int) -> bytes:
    """What the new master writes on the ready pipe once a child serves."""
    return b"ok%d" % pid


def served_by(message: bytes) -> int | None:
    """The new master's pid from a ready message, or None (not one)."""
    if message.startswith(b"ok") and message[2:].isdigit():
        return int(message[2:])
    return None


def outcome(old_pid: int, old_inode: int, pid_file: tuple[int, int] | None, alive: Mapping[int, bool]
            ) -> tuple[str, str]:
    """What ``-k upgrade`` sees, as (state, message): state is "done",
    "rolled back", "failed" or "waiting". ``pid_file`` is (pid, inode) of
    the PidFile now (None: absent); ``alive`` says which pids run. On a
    rollback the old master writes its PidFile anew (a new inode), which
    tells it apart from the moment before it renamed the file."""
    old_alive = alive.get(old_pid, False)
    if pid_file is None:
        if old_alive:
            return "waiting", "the PidFile is being replaced"
        return "failed", f"the old master (pid {old_pid}) is gone and no PidFile names a new one"
    pid, inode = pid_file
    if pid == old_pid:
        if not old_alive:
            return "failed", f"the master (pid {old_pid}) exited before the new one took over"
        if inode != old_inode:
            return "rolled back", f"the new master did not start; pid {old_pid} still serves"
        return "waiting", "the old master has not started the new one yet"
    if not alive.get(pid, False):
        return "waiting", f"the PidFile names pid {pid}, which is not running (yet or any more)"
    if old_alive:
        return "waiting", f"the new master (pid {pid}) runs; the old one (pid {old_pid}) has not stopped yet"
    return "done", f"upgraded: pid {old_pid} -> pid {pid}"
