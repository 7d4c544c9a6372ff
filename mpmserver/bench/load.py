"""The load engine: one event loop driving many HTTP/1.1 connections.

One process runs `run_worker`; `--procs N` runs N of them and merges their
results. Per response the client does one framing parse, one clock read per
read() call, one histogram record and one write; request bytes are built once.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..eventloop import new_event_loop
from .framing import FramingError, ResponseParser
from .histogram import Histogram
from .schedule import connection_schedules

ERROR_KINDS = ("connect", "read", "timeout", "reset")
_monotonic_ns = time.monotonic_ns
_FOREVER = 1 << 62


@dataclass
class LoadConfig:
    """What one generator process does. Picklable, so it can go to a child."""

    host: str
    port: int
    request: bytes
    connections: int               # this process's connections
    duration: float | None         # measured seconds, or None with `requests`
    requests: int | None           # measured requests for this process
    warmup: float = 0.0
    pipeline: int = 1
    rate: float | None = None      # total requests/s across all processes
    total_connections: int = 0     # across all processes (for open-loop phases)
    first_connection: int = 0      # index of our first connection among them
    timeout: float = 5.0
    keepalive: bool = True
    head: bool = False             # HEAD requests: responses carry no body
    start_at: float = 0.0          # time.monotonic() at which to start sending
    unix_socket: str | None = None  # connect to this unix socket instead of host:port


@dataclass
class WorkerResult:
    requests: int = 0
    responses: int = 0
    errors: dict = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    status: dict = field(default_factory=dict)
    bytes_read: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    histogram: dict = field(default_factory=dict)
    error_examples: dict = field(default_factory=dict)


class _Worker:
    """State shared by all connections of one generator process."""

    def __init__(self, cfg: LoadConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.loop = loop
        self.hist = Histogram()
        self.status: collections.Counter = collections.Counter()
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.error_examples: dict[str, str] = {}
        self.requests = 0
        self.responses = 0
        self.finished = 0            # responses + errors among measured requests
        self.bytes_read = 0
        self.sending = True
        self.measure_ns = _FOREVER    # requests issued at/after this are measured
        self.budget = cfg.requests if cfg.requests is not None else _FOREVER
        self.conns: set[_Conn] = set()
        self.done = loop.create_future()

    def fail(self, kind: str, stamps: Iterable[int], exc: BaseException | None = None) -> None:
        m = self.measure_ns
        n = sum(1 for t in stamps if t >= m)
        if n:
            self.errors[kind] += n
            self.finished += n
            if exc is not None and kind not in self.error_examples:
                self.error_examples[kind] = f"{type(exc).__name__}: {exc}"
            self._check_done()

    def _check_done(self) -> None:
        if self.budget <= 0 and self.finished >= self.requests and not self.done.done():
            self.done.set_result(None)

    def open(self, schedule: Any, carry: Iterable[int] = ()) -> None:
        self.loop.create_task(self._open(schedule, list(carry)))

    async def _open(self, schedule, carry: list) -> None:
        cfg = self.cfg
        if not self.sending and not carry:
            return
        try:
            if cfg.unix_socket is not None:
                connect = self.loop.create_unix_connection(lambda: _Conn(self, schedule, carry), cfg.unix_socket)
            else:
                connect = self.loop.create_connection(lambda: _Conn(self, schedule, carry), cfg.host, cfg.port)
            await asyncio.wait_for(connect, cfg.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            if not carry and self.sending:
                # The request this connection was opened for counts as failed.
                now = _monotonic_ns()
                if now >= self.measure_ns and self.budget > 0:
                    self.budget -= 1
                    self.requests += 1
                    carry = [now]
                elif now < self.measure_ns:
                    carry = [now]
            self.fail("connect", carry, exc)
            if self.sending:
                # Refused connections fail in microseconds: pace retries so an
                # absent server is not hammered and the error counts stay readable.
                self.loop.call_later(0.05, self.open, schedule)


class _Conn(asyncio.Protocol):
    __slots__ = ("w", "transport", "parser", "pending", "schedule", "carry",
                 "timer", "closed", "depth", "request")

    def __init__(self, w: _Worker, schedule, carry: list) -> None:
        self.w = w
        self.transport = None
        self.parser = ResponseParser(w.cfg.head)
        self.pending: collections.deque = collections.deque()
        self.schedule = schedule
        self.carry = carry
        self.timer = None
        self.closed = False
        self.depth = w.cfg.pipeline
        self.request = w.cfg.request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.w.conns.add(self)
        if self.carry:
            # Requests a previous connection had sent when the server closed it:
            # resend them, keeping their stamps so the reconnect shows in latency.
            self.pending.extend(self.carry)
            transport.write(self.request * len(self.carry))
            self.carry = []
        self.pump()

    def pump(self, _: Any = None) -> None:
        """Send as many requests as the pipeline has room for."""
        self.timer = None
        w = self.w
        if not w.sending or self.closed:
            return
        room = self.depth - len(self.pending)
        if room <= 0:
            return
        now = _monotonic_ns()
        sched = self.schedule
        n = 0
        pending = self.pending
        while n < room:
            if sched is None:
                stamp = now
            else:
                stamp = sched.peek()
                if stamp > now:
                    self.timer = w.loop.call_later((stamp - now) / 1e9, self.pump)
                    break
                sched.advance()
            if stamp >= w.measure_ns:
                if w.budget <= 0:
                    break
                w.budget -= 1
                w.requests += 1
            pending.append(stamp)
            n += 1
        if n:
            self.transport.write(self.request * n if n > 1 else self.request)

    def data_received(self, data: bytes) -> None:
        w = self.w
        w.bytes_read += len(data)
        try:
            done = self.parser.feed(data)
        except FramingError as exc:
            self.abort("read", exc)
            return
        if not done:
            return
        now = _monotonic_ns()
        pending = self.pending
        m = w.measure_ns
        record = w.hist.record
        status = w.status
        close = False
        for code, close in done:
            if not pending:
                self.abort("read", FramingError("response to a request never sent"))
                return
            stamp = pending.popleft()
            if stamp >= m:
                record((now - stamp) // 1000)
                status[code] += 1
                w.responses += 1
                w.finished += 1
            if close:
                break
        if w.budget <= 0:
            w._check_done()
        if close:
            self.closed = True
            self.transport.close()
            return
        self.pump()

    def abort(self, kind: str, exc: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        stamps, self.pending = self.pending, collections.deque()
        self.w.fail(kind, stamps, exc)
        self.transport.abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        w = self.w
        w.conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        carry = ()
        if self.pending:
            if not self.closed and exc is None:
                try:
                    self.parser.eof()
                    kind = None  # clean close between responses
                except FramingError as e:
                    kind, exc = "read", e
            else:
                kind = None if self.closed else "reset"
            if kind is None:
                carry = list(self.pending)
            else:
                w.fail(kind, self.pending, exc or ConnectionResetError("connection lost"))
            self.pending = collections.deque()
        elif not self.closed and exc is not None:
            pass  # lost while idle: nothing was waiting, just reconnect
        if w.sending or carry:
            w.open(self.schedule, carry)


async def _ticker(w: _Worker, progress, slot: int) -> None:
    timeout_ns = int(w.cfg.timeout * 1e9)
    while True:
        await asyncio.sleep(0.1)
        if progress is not None:
            progress[slot] = w.responses
        limit = _monotonic_ns() - timeout_ns
        for c in list(w.conns):
            if c.pending and c.pending[0] < limit:
                c.abort("timeout", asyncio.TimeoutError(
                    f"no response within {w.cfg.timeout:g} s"))


async def _run(cfg: LoadConfig, progress, slot: int) -> WorkerResult:
    loop = asyncio.get_running_loop()
    w = _Worker(cfg, loop)
    delay = cfg.start_at - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    start_ns = _monotonic_ns()
    if cfg.rate:
        scheds = connection_schedules(cfg.rate, cfg.total_connections or cfg.connections,
                                      start_ns, cfg.first_connection, cfg.connections)
    else:
        scheds = [None] * cfg.connections
    for s in scheds:
        w.open(s)
    ticker = loop.create_task(_ticker(w, progress, slot))
    if cfg.warmup > 0:
        await asyncio.sleep(cfg.warmup)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    w.measure_ns = _monotonic_ns()
    bytes0 = w.bytes_read
    if cfg.requests is not None:
        w._check_done()
        await w.done
    else:
        await asyncio.sleep(cfg.duration)
    t1 = time.monotonic()
    bytes1 = w.bytes_read
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    w.sending = False
    # Let requests already sent finish; whatever is still out after the
    # timeout is counted as a timeout, so requests = responses + errors.
    deadline = time.monotonic() + cfg.timeout
    while w.finished < w.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    ticker.cancel()
    m = w.measure_ns
    for c in list(w.conns):
        stamps = [t for t in c.pending if t >= m]
        c.pending = collections.deque()
        w.fail("timeout", stamps, asyncio.TimeoutError("no response before the run ended"))
        c.closed = True
        c.transport.abort()
    if progress is not None:
        progress[slot] = w.responses
    return WorkerResult(
        requests=w.requests, responses=w.responses, errors=dict(w.errors),
        status={str(k): v for k, v in sorted(w.status.items())},
        bytes_read=bytes1 - bytes0, elapsed=t1 - t0,
        cpu_seconds=(ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        histogram=w.hist.to_dict(), error_examples=dict(w.error_examples))


def run_worker(cfg: LoadConfig, progress: Any = None, slot: int = 0) -> WorkerResult:
    # uvloop when importable: it halves the generator's per-request cost.
    loop, _, _ = new_event_loop("uvloop")
    try:
        return loop.run_until_complete(_run(cfg, progress, slot))
    finally:
        loop.close()


def build_request(method: str, target: str, host_header: str, headers: list[tuple[str, str]],
                  body: bytes, keepalive: bool) -> bytes:
    """The request bytes, built once and written for every request."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    names = {k.lower() for k, _ in headers}
    if "user-agent" not in names:
        lines.append("User-Agent: mpmserver-bench")
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")
    if not keepalive and "connection" not in names:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
