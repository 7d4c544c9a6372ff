"""systemd's protocols, as data (pure): socket activation and readiness.

No libsystemd: socket activation is three environment variables, and
readiness notification is one datagram per message to a unix socket. This
module only reads the variables and formats the messages; listen.py adopts
the inherited sockets and systemd_notify.py sends the datagrams.

Socket activation (sd_listen_fds(3)): the sockets are file descriptors
``SD_LISTEN_FDS_START`` (3) onwards, ``LISTEN_FDS`` of them, meant for the
process whose pid is ``LISTEN_PID``; ``LISTEN_FDNAMES`` names them
(colon-separated, from the socket unit's FileDescriptorName=).

Readiness (sd_notify(3)): newline-separated ``KEY=value`` assignments in one
datagram to ``NOTIFY_SOCKET``, a path, or an abstract name when it starts
with ``@``. ``Type=notify`` waits for ``READY=1``; ``Type=notify-reload``
(systemd 253 and later) also wants ``RELOADING=1`` with ``MONOTONIC_USEC=``
when a reload starts, then ``READY=1`` when it is done.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SD_LISTEN_FDS_START", "ACTIVATION_VARIABLES", "ActivationError", "listen_fds",
           "notify_address", "message", "READY", "STOPPING", "reloading", "status_text"]

SD_LISTEN_FDS_START = 3
ACTIVATION_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
READY = "READY=1"
STOPPING = "STOPPING=1"


class ActivationError(ValueError):
    """The activation variables are set but make no sense; the message says which."""


def listen_fds(environ: Mapping[str, str], pid: int) -> list[tuple[int, str]]:
    """(fd, name) of each socket systemd passed to process ``pid``; [] when
    none were passed, or they were meant for another process (LISTEN_PID is
    not ours: a parent that did not unset them)."""
    count = environ.get("LISTEN_FDS")
    if count is None:
        return []
    owner = environ.get("LISTEN_PID")
    if owner is not None and owner.strip() != str(pid):
        return []
    try:
        n = int(count)
    except ValueError:
        raise ActivationError(f"LISTEN_FDS={count!r} is not a number of sockets") from None
    if n < 0:
        raise ActivationError(f"LISTEN_FDS={count!r} is negative")
    names = environ.get("LISTEN_FDNAMES")
    name_list = names.split(":") if names else []
    if name_list and len(name_list) != n:
        raise ActivationError(f"LISTEN_FDNAMES={names!r} names {len(name_list)} sockets but "
                              f"LISTEN_FDS={n}")
    return [(SD_LISTEN_FDS_START + i, name_list[i] if name_list else "unknown") for i in range(n)]


def notify_address(value: str | None) -> str | bytes | None:
    """The address to send to, from NOTIFY_SOCKET: a path, or for ``@name``
    the abstract name (a leading NUL byte); None when unset or unusable."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # e.g. vsock:...: not something a unix datagram socket reaches


def message(*assignments: str) -> bytes:
    """One datagram: the assignments, one per line. A value with a newline
    would start a new assignment, so newlines in values become spaces."""
    return "\n".join(a.replace("\n", " ") for a in assignments).encode()


def reloading(monotonic_usec: int) -> tuple[str, str]:
    """The assignments that open a reload (Type=notify-reload): the clock is
    CLOCK_MONOTONIC in microseconds, taken when the reload starts."""
    return "RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}"


def status_text(children: int, busy: int, idle: int, requests_per_second: float | None,
                state: str | None = None) -> str:
    """``STATUS=`` for systemctl status: one line from the scoreboard."""
    parts = [f"{children} {'child' if children == 1 else 'children'}",
             f"{busy} busy / {idle} idle threads"]
    if requests_per_second is not None:
        parts.append(f"{requests_per_second:.1f} requests/s")
    text = ", ".join(parts)
    return f"STATUS={state}: {text}" if state else f"STATUS={text}"
