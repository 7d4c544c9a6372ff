"""What becomes of a connection after a request: the vocabulary the request
cycle and the response writer decide in, and the child's hand-off and
listener act on."""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["Outcome", "KEEP", "CLOSE", "ABORT", "REFUSE", "FINISHED", "DONE", "FileTail"]


class Outcome(enum.IntEnum):
    """What a worker tells the listener about a connection it gives back."""

    KEEP = 0  # keep-alive: wait for (or read the rest of) the next request
    CLOSE = 1  # close after a lingering drain (the client may still be sending)
    ABORT = 2  # close at once: the client is gone or the response is broken
    REFUSE = 3  # write this error response, then close with a lingering drain
    FINISHED = 4  # the client sends nothing more (it asked to close, its body was read)
    DONE = 5  # the worker has closed the socket itself: only the counts change


KEEP, CLOSE, ABORT, REFUSE, FINISHED, DONE = Outcome


class FileTail(NamedTuple):
    """The rest of a file the listener serves from an Alias, for write
    completion to send (as a queue, spoolfile.OutQueue, like a worker's
    tail): ``fd`` is a duplicate the receiver owns. ``head``: bytes to write
    before the file (the part of a response head the socket could not take
    yet)."""

    fd: int
    offset: int
    count: int
    head: bytes = b""
