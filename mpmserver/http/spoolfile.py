"""The spools' files: a request body the loop received (BodySpool) and a
response's output the client has not taken yet (OutQueue).

The decisions are spool.py's; this is their thin file layer. Every
temporary file is unlinked from the start (tempfile.TemporaryFile: O_TMPFILE
where the kernel has it), so nothing is left behind whatever happens to the
process; closing the spool gives its bytes back to the child's SpoolBudget.

Ownership moves as the connection does: a BodySpool is written by the
loop, then read by one worker; an OutQueue is filled by one worker, then
written by the loop. Never both at once: no lock.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections import deque
from typing import Any

from .spool import SpoolBudget, SpoolLimits

__all__ = ["Spooler", "BodySpool", "OutQueue", "send_region"]


# What a file region's write reads per call where sendfile cannot write (TLS).
FILE_PIECE = 65536


def send_region(sock: socket.socket, sockfd: int, fd: int, offset: int, count: int) -> int:
    """Write up to ``count`` bytes of the file ``fd`` from ``offset`` to
    ``sock`` (whose descriptor is ``sockfd``); how many went. The one place
    the server decides how a file goes out (the listener's
    connection.send_file is this): sendfile on a plain socket, else (a
    socket sendfile cannot write to, as a TLS one, whose bytes the library
    must encrypt) a read and a send. Raises what the socket raises
    (BlockingIOError when it has no room)."""
    if type(sock) is socket.socket:
        return os.sendfile(sockfd, fd, offset, count)
    return sock.send(os.pread(fd, min(count, FILE_PIECE), offset))


class Spooler:
    """A child's spooling: its limits, its budget, and the spools it makes."""

    __slots__ = ("limits", "budget")

    def __init__(self, limits: SpoolLimits) -> None:
        self.limits = limits
        self.budget = SpoolBudget(limits.per_child, limits.memory_per_child)

    def body(self) -> "BodySpool":
        """A new, empty request body spool (OSError if the directory cannot hold one)."""
        return BodySpool(self.limits.directory, self.budget)

    def queue(self) -> "OutQueue":
        """A new response queue under ResponseSpool and ResponseSpoolMemory."""
        limits = self.limits
        return OutQueue(limits.response_spool, limits.response_memory, self.budget, limits.directory)


class BodySpool:
    """A request body received by the loop into an unlinked temporary file.

    The loop reserves its bytes (``reserve``) and writes them; ``rest`` is
    what followed the body (a pipelined request). A worker then reads it
    from the start at the speed of the disk (``read``) and closes it."""

    __slots__ = ("file", "fd", "size", "reserved", "rest", "pos", "budget", "receiving")

    def __init__(self, directory: str | None, budget: SpoolBudget) -> None:
        self.file = tempfile.TemporaryFile(dir=directory, buffering=0)
        self.fd = self.file.fileno()
        self.size = 0
        self.reserved = 0
        self.rest = b""
        self.pos = 0
        self.budget = budget
        self.receiving: Any = None  # the loop's state while the body arrives (listener/spooling.py)

    def reserve(self, n: int) -> bool:
        """Reserve ``n`` more bytes of the child's SpoolLimitPerChild; False when over."""
        if not self.budget.take_disk(n):
            return False
        self.reserved += n
        return True

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.size += n

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes of the body at most; b"" at its end."""
        data = os.pread(self.fd, min(n, self.size - self.pos), self.pos)
        self.pos += len(data)
        return data

    def close(self) -> None:
        if self.file is None:
            return
        self.file.close()
        self.file = None
        self.budget.give_back(self.reserved, 0)
        self.reserved = 0


class OutQueue:
    """A response's bytes waiting for a slow client, in order: pieces in
    memory (up to ResponseSpoolMemory per connection and the child's share),
    then regions of an unlinked temporary file, and regions of the app's own
    file (wsgi.file_wrapper, sent by sendfile). ``append`` says False when
    ResponseSpool or SpoolLimitPerChild would be exceeded: the worker then
    writes to the client itself. A queue made with ``limit`` 0 takes
    anything in memory (the last bytes of a response, ResponseSpool Off).

    Items: a memoryview, or a list [fd, offset, count, owned] (an owned
    descriptor is the queue's to close: the duplicate of an app's file)."""

    __slots__ = ("items", "limit", "memory_limit", "budget", "directory", "size", "memory", "disk",
                 "file", "file_end")

    def __init__(self, limit: int = 0, memory_limit: int = 0, budget: SpoolBudget | None = None,
                 directory: str | None = None) -> None:
        self.items: deque = deque()
        self.limit = limit  # ResponseSpool (0: no bound, nothing on disk)
        self.memory_limit = memory_limit
        self.budget = budget
        self.directory = directory
        self.size = 0  # bytes queued, in all (the ResponseSpool bound)
        self.memory = 0  # of them, reserved in memory
        self.disk = 0  # of them, reserved on disk
        self.file: Any = None
        self.file_end = 0

    @property
    def empty(self) -> bool:
        return not self.items

    @property
    def left(self) -> int:
        """Bytes still to write (the access log's "not sent")."""
        return sum(item[2] if type(item) is list else len(item) for item in self.items)

    def append(self, data: bytes | memoryview) -> bool:
        """Queue ``data`` after what waits; False (nothing queued) when a bound says no."""
        n = len(data)
        if not n:
            return True
        if not self.limit:
            self.items.append(memoryview(data))
            return True
        if self.size + n > self.limit:
            return False
        budget = self.budget
        if self.memory + n <= self.memory_limit and budget.take_memory(n):
            self.memory += n
            self.items.append(memoryview(data))
        elif budget.take_disk(n):
            self.disk += n
            try:
                self._to_file(data)
            except OSError:  # a full disk: the worker writes it itself
                return False
        else:
            return False
        self.size += n
        return True

    def _to_file(self, data: bytes | memoryview) -> None:
        if self.file is None:
            self.file = tempfile.TemporaryFile(dir=self.directory, buffering=0)
        fd = self.file.fileno()
        start = self.file_end
        view = memoryview(data)
        while view:
            view = view[os.pwrite(fd, view, self.file_end):]
            self.file_end = start + len(data) - len(view)
        last = self.items[-1] if self.items else None
        if type(last) is list and last[0] == fd and last[1] + last[2] == start:
            last[2] += len(data)  # contiguous with the region before it
        else:
            self.items.append([fd, start, len(data), False])

    def append_file(self, fd: int, offset: int, count: int) -> None:
        """Queue ``count`` bytes of a file from ``offset`` (sendfile);
        ``fd`` becomes the queue's. No bound: nothing is copied."""
        self.items.append([fd, offset, count, True])

    def send_to(self, sock: socket.socket) -> int:
        """Write as much as the socket takes now; the bytes written. Raises
        OSError when the client is gone."""
        items = self.items
        sockfd = sock.fileno()
        total = 0
        while items:
            item = items[0]
            try:
                if type(item) is list:
                    n = send_region(sock, sockfd, item[0], item[1], item[2])
                    if not n:
                        raise ConnectionError("client closed the connection")
                else:
                    n = sock.send(item)
            except (BlockingIOError, InterruptedError):
                return total
            total += n
            if type(item) is list:
                item[1] += n
                item[2] -= n
                if not item[2]:
                    items.popleft()
                    if item[3]:
                        os.close(item[0])
            elif n < len(item):
                items[0] = item[n:]
            else:
                items.popleft()
        return total

    def close(self) -> None:
        """Drop what was not sent: close the files, give the bytes back."""
        items = self.items
        while items:
            item = items.popleft()
            if type(item) is list and item[3]:
                try:
                    os.close(item[0])
                except OSError:
                    pass
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.budget is not None and (self.disk or self.memory):
            self.budget.give_back(self.disk, self.memory)
            self.disk = self.memory = 0
