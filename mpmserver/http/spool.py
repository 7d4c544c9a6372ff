"""Spooling decisions: which request bodies the listener's loop receives
whole before a worker sees them, where a response the client reads slowly
is queued (memory, then a temporary file), and the bounds of both.

Pure: no files, sockets or threads of its own (spoolfile.py does the file
I/O, child/listener/spooling.py the loop's reading, response.Channel the
worker's queueing); SpoolBudget holds a lock only because workers and the
loop both account against it.

The peers' names for the same settings (docs/hostile-clients.md): waitress's
``inbuf_overflow`` (the in-memory part of a request body: our
RequestBodyBuffer), ``max_request_body_size`` (LimitRequestBody),
``outbuf_overflow`` (ResponseSpoolMemory) and ``outbuf_high_watermark``
(ResponseSpool).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["BUFFER", "SPOOL", "STREAM", "SpoolLimits", "SpoolBudget", "body_plan", "target_path",
           "MEMORY_PER_CHILD_FACTOR", "CONTINUE", "answering_continue", "without_expect"]

# What the loop does with a request body (body_plan):
STREAM = 0  # nothing: a worker reads it from the socket (the app streams it)
BUFFER = 1  # receive it into memory (RequestBodyBuffer), then dispatch
SPOOL = 2  # receive it into a temporary file (RequestBodySpool), then dispatch

# The memory a child's response queues hold together, in ResponseSpoolMemory
# units: past it, queued output goes to temporary files.
MEMORY_PER_CHILD_FACTOR = 16


@dataclass(frozen=True, slots=True)
class SpoolLimits:
    """The spooling directives, decided once per child."""

    limit_body: int  # LimitRequestBody (0: none): a declared length over it is the worker's 413
    body_buffer: int  # RequestBodyBuffer: a body up to this is held in memory (0: off)
    body_spool: int  # RequestBodySpool, bounded by LimitRequestBody: the largest spooled body (0: off)
    exclude: tuple[bytes, ...]  # RequestBodySpoolExclude: URL path prefixes whose bodies stream
    response_spool: int  # ResponseSpool: the most of one response queued for a slow client (0: off)
    response_memory: int  # ResponseSpoolMemory: of that, what one connection holds in memory
    per_child: int  # SpoolLimitPerChild: the temporary files' bytes of one child, together (0: no bound)
    directory: str | None  # SpoolDirectory (None: the system's temporary directory)

    @classmethod
    def from_config(cls, config: Any) -> "SpoolLimits":
        body_spool = config.request_body_spool
        if config.limit_request_body:
            body_spool = min(body_spool, config.limit_request_body)
        return cls(config.limit_request_body, config.request_body_buffer, body_spool,
                   tuple(p.encode("latin-1") for p in config.request_body_spool_exclude),
                   config.response_spool, config.response_spool_memory, config.spool_limit_per_child,
                   config.spool_directory)

    @property
    def memory_per_child(self) -> int:
        return self.response_memory * MEMORY_PER_CHILD_FACTOR


def target_path(head: bytes) -> bytes:
    """The path of a checked head's request target (origin-form or
    absolute-form), without its query: what RequestBodySpoolExclude matches."""
    line = head[:head.find(b"\n")]
    target = line.split(b" ", 2)[1] if line.count(b" ") >= 2 else b""
    if target[:1] != b"/":  # absolute-form: scheme://authority/path
        slash = target.find(b"/", target.find(b"//") + 2) if b"//" in target else -1
        target = target[slash:] if slash >= 0 else b"/"
    return target.split(b"?", 1)[0]


def body_plan(declared: int, limits: SpoolLimits, head: bytes) -> int:
    """What the loop does with a request body before a worker sees it.

    ``declared``: protocol.declared_body's answer (the length, -1 chunked,
    0 none; a client waiting for 100 Continue is answering_continue()'s). A Content-Length body up to
    RequestBodyBuffer is BUFFERed; a larger one up to RequestBodySpool is
    SPOOLed; larger still it STREAMs (a declared length over
    LimitRequestBody included: the worker answers 413 without reading). A
    chunked body is BUFFERed first: spooling_chunked() says whether it
    moves to a file once it outgrows the buffer. A path under
    RequestBodySpoolExclude streams past RequestBodyBuffer."""
    if not declared or declared < -1:
        return STREAM
    if declared > 0:
        if limits.limit_body and declared > limits.limit_body:
            return STREAM
        if declared <= limits.body_buffer:
            return BUFFER
        if declared <= limits.body_spool and not excluded(limits, head):
            return SPOOL
        return STREAM
    return BUFFER if limits.body_buffer or spooling_chunked(limits, head) else STREAM


_EXPECT_LINE = re.compile(rb"\r\nexpect:[^\r]*", re.IGNORECASE)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def answering_continue(declared: int, limits: SpoolLimits, head: bytes) -> bool:
    """Whether the listener answers a client's "Expect: 100-continue"
    itself and spools the body (as waitress does): for a Content-Length
    body it would SPOOL. ``declared``: the length as if no Expect came.
    Others (small or chunked bodies) are a worker's, which answers when
    the app first reads."""
    return declared > limits.body_buffer and body_plan(declared, limits, head) == SPOOL


def without_expect(buf: bytes, end: int) -> tuple[bytes, int]:
    """``buf`` with the Expect lines of its head (which ends at ``end``)
    taken out, and the head's new end: the expectation is answered, and
    the worker must not answer it again."""
    head = _EXPECT_LINE.sub(b"", buf[:end])
    return head + buf[end:], len(head)


def spooling_chunked(limits: SpoolLimits, head: bytes) -> bool:
    """Whether a chunked body that outgrows RequestBodyBuffer is spooled (else a worker streams it)."""
    return bool(limits.body_spool) and not excluded(limits, head)


def excluded(limits: SpoolLimits, head: bytes) -> bool:
    if not limits.exclude:
        return False
    return target_path(head).startswith(limits.exclude)


class SpoolBudget:
    """A child's spooled bytes, together: temporary files (request bodies
    and response queues: SpoolLimitPerChild) and response queues held in
    memory (MEMORY_PER_CHILD_FACTOR x ResponseSpoolMemory). Taken by the
    loop (request bodies) and by workers (responses), given back by
    whichever closes the spool."""

    __slots__ = ("disk_limit", "memory_limit", "disk", "memory", "refused", "_lock")

    def __init__(self, disk_limit: int, memory_limit: int) -> None:
        self.disk_limit = disk_limit  # 0: no bound
        self.memory_limit = memory_limit
        self.disk = 0
        self.memory = 0
        self.refused = 0  # takes refused, for the error log and tests
        self._lock = threading.Lock()

    def take_disk(self, n: int) -> bool:
        """Reserve ``n`` bytes of temporary files; False over SpoolLimitPerChild."""
        with self._lock:
            if self.disk_limit and self.disk + n > self.disk_limit:
                self.refused += 1
                return False
            self.disk += n
            return True

    def take_memory(self, n: int) -> bool:
        """Reserve ``n`` bytes of queued response in memory; False past the child's share."""
        with self._lock:
            if self.memory + n > self.memory_limit:
                return False
            self.memory += n
            return True

    def give_back(self, disk: int, memory: int) -> None:
        with self._lock:
            self.disk -= disk
            self.memory -= memory
