"""Sibling transfer: moving a connection to a sibling child; the mechanism, not the policy.

Each child's listener binds one unix datagram socket with an abstract name
derived from the master's pid and the child's slot, and watches it in its
event loop. A child whose workers are all busy sends a connection whose
request is ready (its descriptor, with SCM_RIGHTS, plus the bytes it has
already read) to a sibling with an idle worker, which adopts it as if it had
read those bytes itself. Whether to send, and to whom, is admission's
decision (admission.transfer_to); this module only moves descriptors.

Abstract names have no file permissions, so any local process can send to
one: the receiver asks the kernel for each sender's credentials
(SO_PASSCRED) and drops, closing its descriptors, anything not sent by our
own uid (a sibling runs as the same User).

Datagrams, not a stream: one message is one connection, whole or not at
all; a full receive buffer fails the send at once (EAGAIN), and the sender
then keeps the connection and queues it locally, as it would have anyway.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from dataclasses import dataclass

# A request that fits in one datagram: a head up to LimitRequestFieldSize x
# fields plus a buffered body can exceed the default socket buffer (about
# 208 KB); a larger one is served by the child that read it.
MAX_PAYLOAD = 128 * 1024
_RCVBUF = 1 << 20  # room for a burst of transfers; the kernel caps it at rmem_max
_UCRED = struct.Struct("3i")  # pid, uid, gid
_CMSG_SPACE = socket.CMSG_SPACE(array.array("i", [0]).itemsize * 4) + socket.CMSG_SPACE(_UCRED.size)


def address(master_pid: int, slot: int) -> bytes:
    """The abstract name of a child's receiving socket (Linux: leading NUL)."""
    return f"\0mpmserver-{master_pid}-{slot}".encode()


@dataclass(slots=True)
class Transferred:
    """A connection as it travels: its descriptor and what the receiver needs to go on."""

    sock: socket.socket
    buf: bytes
    client_addr: str
    client_port: int
    server_port: int
    peer_addr: str
    trusted: bool
    requests: int


class Transfer:
    """One child's endpoint: receives connections for this slot, sends to siblings'."""

    def __init__(self, master_pid: int, slot: int):
        self.master_pid = master_pid
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self.sock.bind(address(master_pid, slot))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self._uid = os.geteuid()  # after the privilege drop: the User's

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, slot: int, sock: socket.socket, buf: bytes, fields: dict) -> bool:
        """Send a connection to the child in ``slot``; False (nothing sent, the
        caller keeps it) when it is too large, or the sibling is gone or full."""
        meta = json.dumps(fields, separators=(",", ":")).encode()
        if len(meta) + 1 + len(buf) > MAX_PAYLOAD:
            return False
        try:
            # sendmsg, as socket.send_fds does (SCM_RIGHTS), but to an
            # address: send_fds drops its address argument (CPython 3.11).
            sent = self.sock.sendmsg([meta, b"\n", buf],
                                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))],
                                     0, address(self.master_pid, slot))
        except OSError:  # ECONNREFUSED (no such sibling), EAGAIN (its buffer is full)
            return False
        return sent == len(meta) + 1 + len(buf)

    def receive(self) -> tuple[list[Transferred], list[str]]:
        """Every connection waiting (non-blocking), and a note for each message refused."""
        arrived: list[Transferred] = []
        refused: list[str] = []
        while True:
            try:
                data, ancdata, flags, _ = self.sock.recvmsg(MAX_PAYLOAD, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return arrived, refused
            except OSError as exc:
                refused.append(f"receive: {exc}")
                return arrived, refused
            fds, uid = _unpack(ancdata)
            socks = _own(fds)  # closed from here unless adopted
            problem = _check(data, flags, socks, uid, self._uid)
            if problem:
                refused.append(problem)
                for s in socks:
                    s.close()
                continue
            meta, _, buf = data.partition(b"\n")
            try:
                arrived.append(Transferred(socks[0], buf, **json.loads(meta)))
            except (ValueError, TypeError) as exc:
                refused.append(f"malformed transfer: {exc}")
                socks[0].close()


def _unpack(ancdata: list) -> tuple[list[int], int | None]:
    fds: list[int] = []
    uid = None
    for level, kind, payload in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(payload[:len(payload) - len(payload) % arr.itemsize])
            fds.extend(arr)
        elif kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
            uid = _UCRED.unpack_from(payload)[1]
    return fds, uid


def _own(fds: list[int]) -> list[socket.socket]:
    """Socket objects for received descriptors; if one is not a socket, all
    are closed and none returned (the message is then refused by the count)."""
    socks = []
    for fd in fds:
        try:
            socks.append(socket.socket(fileno=fd))
        except OSError:
            os.close(fd)
    if len(socks) != len(fds):
        for sock in socks:
            sock.close()
        return []  # refused by the count
    return socks


def _check(data: bytes, flags: int, socks: list[socket.socket], uid: int | None, own_uid: int) -> str | None:
    """Why a message is refused, or None. Only our own uid may transfer us a
    connection: an abstract socket is reachable by every local process."""
    if uid != own_uid:
        return f"transfer from uid {uid} refused (ours is {own_uid})"
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        return "transfer truncated"
    if len(socks) != 1:
        return f"transfer with {len(socks)} descriptors refused"
    if socks[0].type != socket.SOCK_STREAM:
        return "transfer of a descriptor that is not a stream socket refused"
    return None
