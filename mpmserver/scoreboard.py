r"""The scoreboard: shared memory through which the master and its children see each other.

Like Apache's, it is created by the master before the first fork, either as
anonymous shared memory (inherited by fork) or, when ScoreBoardFile is set, as
a file mapped MAP_SHARED so that ``mpmserver status`` in another process can
read it. There are no locks: every record (or sub-record) has exactly one
writer, and readers use a sequence counter per record (a seqlock) so that a
snapshot never mixes two writes. The writer makes the counter odd, writes the
fields, and makes it even again; a reader reads the counter, copies the record,
reads the counter again, and keeps the copy only if both reads are the same
even number. Single-byte fields (the worker status) are written without the
counter because a byte cannot tear.

The seqlock relies on stores becoming visible to other processes in program
order (true on x86-64; each write is a separate C call, so the compiler cannot
reorder them). On weakly ordered CPUs a reader may, rarely, keep a stale copy;
it can never crash or read past a record.

Layout (version 3, little-endian, all offsets in bytes)
=======================================================

Global record, offset 0, 64 bytes::

     0  8s  magic  b"MPMSCORE"
     8  I   layout version (LAYOUT_VERSION)
    12  I   size of the global record (64)
    16  I   server_limit
    20  I   thread_limit
    24  I   size of a process record (168)
    28  I   size of a worker record (384)
    32  Q   seq            \
    40  q   generation      | written by the master only
    48  d   restart_time    | (epoch seconds)
    56  q   master_pid     /

Master counters, offset 64, 128 bytes, written by the master only (one
seqlock), counted since the master started: a HUP restart, which zeroes the
process and worker records, keeps them::

     0  Q   seq
     8  Q   spawns (children forked)
    16  Q   graceful restarts (USR1)
    24  Q   HUP restarts
    32  5Q  children exited, by cause, in EXIT_CAUSES order: connections
            (MaxConnectionsPerChild), requests (MaxRequestsPerChild), memory
            (MaxMemoryPerChild), request_timeout (RequestTimeout), crash
    72  Q   restarts that failed (a graceful restart abandoned, a HUP
            skipped: the app or the configuration did not load)
    80  48x reserved

Process records, ``server_limit`` of them from offset 192, 168 bytes each::

     0  Q   seq            \  master sub-record: written by the master at
     8  q   pid             | fork, reap and stop
    16  q   generation      |
    24  B   quiescing       |
    25  B   draining        |
    26  6x                 /
    32  Q   seq            \  child sub-record: written by the child's
    40  q   pid             | listener thread. pid is the writer's own pid;
    48  I   connections     | the sub-record is ignored unless it matches the
    52  I   keep_alive      | master's pid, so a dead child's leftovers never
    56  I   lingering_close | show up against its successor. writing counts
    60  H   writing         | above 65535 are published as 65535.
    62  B   not_accepting  /
    63  B   recycle_cause  (RECYCLE_*, 0 if none: outside the seqlock, written
                            alone by whichever thread of the child reaches a
                            limit first; zeroed by the master when it reaps)
    64  Q   static_requests \ slot counters of the child sub-record (its
    72  Q   static_bytes    / seqlock): responses the listener served from an
                              Alias, and their bytes; each child of the slot
                              carries on its predecessor's counts (as the
                              worker records' access_count), a HUP zeroes them
    80  16x reserved
    96  Q   seq            \  TLS sub-record: written by the child's
   104  q   pid             | listener thread (its own seqlock; ignored
   112  I   tls connections | unless pid is the master's, as above): open
   116  I   handshakes      | TLS connections past their handshake, those in
   120  8I  handshake       | it, and the handshakes that failed, by
            failures       /  TLS_FAILURES (this child's, since it started)
   152  8x  reserved
   160  Q   rss            resident memory of the child, bytes, in the machine's
                            byte order, outside any seqlock: one aligned
                            8-byte store, which cannot tear; written by
                            whichever thread of the child read it last (each
                            second, after each request under a memory limit),
                            zeroed by the master at reap

Worker records, ``server_limit * thread_limit`` of them after the process
records (record of (slot, thread) at index slot * thread_limit + thread),
384 bytes each. Fields written together on the hot path are adjacent so one
``pack_into`` covers them::

     0  Q   seq
     8  64s request line (NUL padded, cut to 64 bytes)   \ begin_request
    72  B   status (SERVER_*; written alone by set_status) |
    73  7x                                                 |
    80  d   start_time (epoch)                             |
    88  d   last_used (epoch)          \ end_request      /
    96  d   stop_time (epoch)           |
   104  d   duration (last request, s)  |
   112  d   total_duration (slot, s)    |
   120  Q   access_count (slot)         |
   128  Q   bytes_served (slot)         |
   136  Q   my_access_count (child)     |
   144  Q   my_bytes_served (child)     |
   152  Q   conn_count (connection)     |
   160  Q   conn_bytes (connection)    /
   168  q   pid
   176  q   tid
   184  q   generation
   192  48s client address (NUL padded)
   240  15Q requests by duration (slot): not cumulative, one counter per
            bucket of DURATION_BUCKETS (Prometheus' default bounds, le) and
            a last one for longer requests; end_request adds 1 to one of
            them inside its seqlock, so they always sum to access_count
   360  24x reserved

Responses by status code, after the worker records: ``thread_limit + 1``
rows per slot (the listener's, then one per worker thread), each of
RESPONSE_CELLS 8-byte counters in the machine's byte order: one per code of
RESPONSE_CODES, then one for every other code, then one never shown (the
cell of status 0: a request that got no response from this writer, so that
counting costs no branch). Each writer owns its row and adds 1 to one cell
per response it writes (a worker the responses of the app and of the
server's pages, the listener the error responses the server writes itself):
an aligned 8-byte increment, outside any seqlock, that no reader sees half
done. Like the slot counters they survive the replacement of a child and
are zeroed by reset(). The table lies last so that a snapshot, which copies
the records before it, does not copy it: only /metrics reads it.

``draining`` is the master's word that a graceful stop with
GracefulStopDrain has begun: the child keeps serving, and its HealthPath
answers 503. The master writes it into the record of every live child when
the drain starts, and into each child it forks during the drain.

Slot counters (access_count, bytes_served, total_duration, the duration
buckets) survive the replacement of a child in the slot, as in Apache;
reset() (HUP) zeroes them, and every other record but the global one and
the master counters.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HARD_LIMIT", "LAYOUT_VERSION", "MAGIC", "STATUS_CHARS", "STATUS_NAMES",
    "SERVER_DEAD", "SERVER_STARTING", "SERVER_READY", "SERVER_BUSY_READ",
    "SERVER_BUSY_WRITE", "SERVER_BUSY_KEEPALIVE", "SERVER_BUSY_LOG",
    "SERVER_BUSY_DNS", "SERVER_CLOSING", "SERVER_GRACEFUL", "SERVER_IDLE_KILL",
    "RECYCLE_CONNECTIONS", "RECYCLE_REQUESTS", "RECYCLE_MEMORY", "EXIT_CHILDFATAL", "EXIT_CHILDSICK",
    "EXIT_CAUSES", "DURATION_BUCKETS", "RESPONSE_CODES", "RESPONSE_CELLS", "response_cell", "TLS_FAILURES",
    "ScoreboardError", "Scoreboard", "ProcessRecord", "WorkerRecord", "MasterCounters",
    "WorkerSnapshot", "ProcessSnapshot", "ScoreboardSnapshot", "scoreboard_size",
]

SERVER_DEAD = 0
SERVER_STARTING = 1
SERVER_READY = 2
SERVER_BUSY_READ = 3
SERVER_BUSY_WRITE = 4
SERVER_BUSY_KEEPALIVE = 5
SERVER_BUSY_LOG = 6
SERVER_BUSY_DNS = 7
SERVER_CLOSING = 8
SERVER_GRACEFUL = 9
SERVER_IDLE_KILL = 10
STATUS_CHARS = ".S_RWKLDCGI"
STATUS_NAMES = (
    "Dead", "Starting", "Ready", "Read", "Write", "Keepalive", "Logging",
    "DNS lookup", "Closing", "Graceful", "Dying",
)

# Why a child recycled itself, as it records it in its process record
# (recycle_cause; 0: it did not).
RECYCLE_CONNECTIONS = 1  # MaxConnectionsPerChild
RECYCLE_REQUESTS = 2  # MaxRequestsPerChild
RECYCLE_MEMORY = 3  # MaxMemoryPerChild
# A child's exit status that is not a recycle: Apache's APEXIT_CHILDFATAL
# (it could not start: do not replace it in a loop) and APEXIT_CHILDSICK (httpd.h).
EXIT_CHILDFATAL = 0xF
EXIT_CHILDSICK = 0x7
# Why a reaped child exited, as the master counts it (maintenance.exit_cause
# decides): the order of the exit counters in the master counters region.
EXIT_CAUSES = ("connections", "requests", "memory", "request_timeout", "crash")
# Upper bounds (seconds, inclusive) of the request-duration buckets of a
# worker record: Prometheus' defaults. Part of the layout: changing them
# changes LAYOUT_VERSION.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

# Why a TLS handshake failed, in the order of the process record's counters
# (modules/tls.failure_reason decides; part of the layout).
TLS_FAILURES = ("timeout", "closed", "plain_http", "not_tls", "alpn", "protocol", "certificate", "other")

# The status codes counted apiece (mpmserver_responses_total{code}); any
# other is counted as "other". Part of the layout, like DURATION_BUCKETS.
RESPONSE_CODES = (
    101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308,
    400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 429, 431,
    500, 501, 502, 503, 504, 505,
)
RESPONSE_OTHER = len(RESPONSE_CODES)  # the cell of any other code
RESPONSE_NONE = RESPONSE_OTHER + 1  # the cell of status 0 (no response): never shown
RESPONSE_CELLS = RESPONSE_NONE + 1
# The cell of each status 0..999 (a WSGI status has three digits): indexing
# bytes is the cheapest lookup there is (one array index per response).
_RESPONSE_CELL = bytes([RESPONSE_NONE]) + bytes(
    RESPONSE_CODES.index(c) if c in RESPONSE_CODES else RESPONSE_OTHER for c in range(1, 1000))


def response_cell(status: int) -> int:
    """The counter cell of a status code (0: the uncounted cell)."""
    return _RESPONSE_CELL[status] if 0 <= status < 1000 else RESPONSE_OTHER


MAGIC = b"MPMSCORE"
LAYOUT_VERSION = 3
# Apache's compile-time cap on ServerLimit and ThreadLimit (MAX_SERVER_LIMIT
# and MAX_THREAD_LIMIT in worker.c): config clamps to it, create() and attach()
# refuse more.
HARD_LIMIT = 20000
# A ScoreBoardFile holds client addresses and request lines: its owner only,
# or its owner and the children's Group (see Scoreboard.create).
SCOREBOARD_FILE_MODE = 0o600
SCOREBOARD_GROUP_MODE = 0o640

# The widths of the request line and client address fields (cut to fit).
REQUEST_LEN = 64
CLIENT_LEN = 48

_HEADER = struct.Struct("<8sIIIIII")
_GLOBAL = struct.Struct("<Qqdq")
_GLOBAL_OFF = 32
GLOBAL_SIZE = 64

_SEQ = struct.Struct("<Q")
_U64 = struct.Struct("<Q")
_D = struct.Struct("<d")

COUNTERS_OFF = GLOBAL_SIZE
COUNTERS_SIZE = 128
_COUNTERS = struct.Struct(f"<Q3Q{len(EXIT_CAUSES)}QQ48x")
# offsets within the master counters region
_C_SPAWNS_OFF = 8
_C_GRACEFUL_OFF = 16
_C_HUP_OFF = 24
_C_EXITS_OFF = 32
_C_RESTART_FAILURES_OFF = 72

_PMASTER = struct.Struct("<QqqBB6x")
_PCHILD = struct.Struct("<QqIIIHB")
_PCHILD_OFF = 32
_P_CAUSE_OFF = 63
_PSTATIC = struct.Struct("<QQ")
_PSTATIC_OFF = 64
_PTLS = struct.Struct(f"<QqII{len(TLS_FAILURES)}I")
_PTLS_OFF = 96
_P_RSS_OFF = 160
_RSS = struct.Struct("=Q")
PROCESS_SIZE = 168
_CODES = struct.Struct(f"={RESPONSE_CELLS}Q")  # a row of response counters, native order

_WORKER = struct.Struct(f"<Q{REQUEST_LEN}sB7x5d6Qqqq{CLIENT_LEN}s")  # up to the duration buckets
_W_BEGIN = struct.Struct(f"<{REQUEST_LEN}sB7xdd")
_W_BEGIN_OFF = 8
_W_STATUS_OFF = 72
_W_END = struct.Struct("<4d6Q")
_W_END_OFF = 88
_W_LAST_USED_OFF = _W_END_OFF  # the first of _W_END
_W_SLOT = struct.Struct("<dQQ")  # total_duration, access_count, bytes_served
_W_SLOT_OFF = 112
_W_IDENT = struct.Struct("<qqq")
_W_IDENT_OFF = 168
_W_CLIENT = struct.Struct(f"<{CLIENT_LEN}s")
_W_CLIENT_OFF = 192
_W_CONN = struct.Struct("<QQ")
_W_CONN_OFF = 152
_W_BUCKETS = struct.Struct(f"<{len(DURATION_BUCKETS) + 1}Q")
_W_BUCKETS_OFF = 240
WORKER_SIZE = 384

assert _WORKER.size == _W_BUCKETS_OFF and _W_BUCKETS_OFF + _W_BUCKETS.size + 24 == WORKER_SIZE
assert _PMASTER.size == 32 and _PCHILD_OFF + _PCHILD.size == _P_CAUSE_OFF == _PSTATIC_OFF - 1
assert _PSTATIC_OFF + _PSTATIC.size + 16 == _PTLS_OFF and _PTLS_OFF + _PTLS.size + 8 == _P_RSS_OFF
assert _P_RSS_OFF + _RSS.size == PROCESS_SIZE and PROCESS_SIZE % 8 == 0  # the table stays 8-byte aligned
assert _HEADER.size + _GLOBAL.size == GLOBAL_SIZE and _COUNTERS.size == COUNTERS_SIZE
assert _C_EXITS_OFF + 8 * len(EXIT_CAUSES) + 56 == COUNTERS_SIZE

_READ_RETRIES = 50


class ScoreboardError(Exception):
    """The scoreboard cannot be created or attached; the message says what to do."""


def _records_size(server_limit: int, thread_limit: int) -> int:
    """Bytes up to the table of responses: what a snapshot copies."""
    return (GLOBAL_SIZE + COUNTERS_SIZE + server_limit * PROCESS_SIZE
            + server_limit * thread_limit * WORKER_SIZE)


def scoreboard_size(server_limit: int, thread_limit: int) -> int:
    """Bytes needed for a scoreboard of these limits."""
    return (_records_size(server_limit, thread_limit)
            + server_limit * (thread_limit + 1) * _CODES.size)


# --- snapshots (pure data) -------------------------------------------------

@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    status: int
    pid: int
    tid: int
    generation: int
    access_count: int
    bytes_served: int
    my_access_count: int
    my_bytes_served: int
    conn_count: int
    conn_bytes: int
    start_time: float
    stop_time: float
    last_used: float
    duration: float
    request: str
    client: str
    # Appended with defaults so positional construction with the 16 fields above still works.
    total_duration: float = 0.0
    # Requests by duration: one count per DURATION_BUCKETS bound, then one
    # for longer requests (not cumulative); () in hand-built snapshots.
    duration_buckets: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    slot: int
    pid: int
    generation: int
    quiescing: bool
    not_accepting: bool
    connections: int
    keep_alive: int
    workers: tuple[WorkerSnapshot, ...]
    lingering_close: int = 0
    draining: bool = False
    writing: int = 0  # connections in write completion (Apache's ConnsAsyncWriting)
    recycle_cause: int = 0  # RECYCLE_* once the child has reached a limit, else 0
    # Responses the listener served from an Alias in this slot, and their
    # bytes (slot counters: they survive the child, as access_count does).
    static_requests: int = 0
    static_bytes: int = 0
    tls_connections: int = 0  # open TLS connections past their handshake
    tls_handshakes: int = 0  # TLS handshakes in progress
    tls_failures: tuple[int, ...] = (0,) * len(TLS_FAILURES)  # this child's failed handshakes, by TLS_FAILURES
    rss: int = 0  # the live child's resident memory, bytes, as it last published it (0: not yet)
    # Responses written in this slot by status code: one count per
    # RESPONSE_CODES code, then the other codes' (since the last HUP, as the
    # slot counters); () unless the snapshot was asked for them.
    responses: tuple[int, ...] = ()

    def has_started(self, threads: int | None = None) -> bool:
        """Some worker (of the first ``threads``) got past STARTING: the
        child imported its app and its listener is starting."""
        return any(w.status not in (SERVER_DEAD, SERVER_STARTING) for w in self.workers[:threads])

    @property
    def requests(self) -> int:
        """Requests served in this slot (by every child it has held since the last HUP)."""
        return sum(w.access_count for w in self.workers)

    @property
    def request_seconds(self) -> float:
        """Time spent serving them, summed."""
        return sum(w.total_duration for w in self.workers)

    @property
    def duration_buckets(self) -> tuple[int, ...]:
        """Those requests by duration (as WorkerSnapshot.duration_buckets), summed over the workers."""
        # zip and sum run in C: a /metrics page sums every worker of every slot.
        per_worker = [w.duration_buckets for w in self.workers if w.duration_buckets]
        return tuple(map(sum, zip(*per_worker))) if per_worker else (0,) * (len(DURATION_BUCKETS) + 1)


@dataclass(frozen=True, slots=True)
class MasterCounters:
    """The master's counters, since it started (a HUP keeps them)."""
    spawns: int = 0
    graceful_restarts: int = 0
    hup_restarts: int = 0
    exits: tuple[int, ...] = (0,) * len(EXIT_CAUSES)  # in EXIT_CAUSES order
    restart_failures: int = 0

    def exits_by_cause(self) -> dict[str, int]:
        return dict(zip(EXIT_CAUSES, self.exits))


_NOT_IDLE_OR_BUSY = frozenset((SERVER_DEAD, SERVER_STARTING, SERVER_IDLE_KILL))


@dataclass(frozen=True, slots=True)
class ScoreboardSnapshot:
    server_limit: int
    thread_limit: int
    generation: int
    restart_time: float
    master_pid: int
    processes: tuple[ProcessSnapshot, ...]
    counters: MasterCounters = MasterCounters()

    # mod_status counts workers only in live, non-quiescing processes; READY
    # workers count as idle only in the current generation, and busy includes
    # GRACEFUL ones (reported apart as GracefulWorkers).
    def _live(self) -> Iterator[ProcessSnapshot]:
        for p in self.processes:
            if p.pid and not p.quiescing:
                yield p

    @property
    def busy_workers(self) -> int:
        return sum(1 for p in self._live() for w in p.workers
                   if w.status != SERVER_READY and w.status not in _NOT_IDLE_OR_BUSY)

    @property
    def graceful_workers(self) -> int:
        return sum(1 for p in self._live() for w in p.workers if w.status == SERVER_GRACEFUL)

    @property
    def idle_workers(self) -> int:
        return sum(1 for p in self._live() if p.generation == self.generation
                   for w in p.workers if w.status == SERVER_READY)

    @property
    def processes_alive(self) -> int:
        """Slots holding a process (Apache's "Processes" counts these)."""
        return sum(1 for p in self.processes if p.pid)

    @property
    def stopping(self) -> int:
        """Processes that are quiescing or belong to an older generation."""
        return sum(1 for p in self.processes
                   if p.pid and (p.quiescing or p.generation != self.generation))

    @property
    def total_accesses(self) -> int:
        """Requests answered: by workers, and by the listeners from an Alias."""
        return sum(w.access_count for p in self.processes for w in p.workers) + self.static_requests

    @property
    def total_bytes(self) -> int:
        return sum(w.bytes_served for p in self.processes for w in p.workers) + self.static_bytes

    @property
    def static_requests(self) -> int:
        return sum(p.static_requests for p in self.processes)

    @property
    def static_bytes(self) -> int:
        return sum(p.static_bytes for p in self.processes)

    @property
    def total_duration(self) -> float:
        return sum(w.total_duration for p in self.processes for w in p.workers)

    @property
    def conns_total(self) -> int:
        return sum(p.connections for p in self.processes if p.pid)

    @property
    def conns_keep_alive(self) -> int:
        return sum(p.keep_alive for p in self.processes if p.pid)

    @property
    def conns_writing(self) -> int:
        return sum(p.writing for p in self.processes if p.pid)

    @property
    def conns_closing(self) -> int:
        return sum(p.lingering_close for p in self.processes if p.pid)

    @property
    def tls_connections(self) -> int:
        return sum(p.tls_connections for p in self.processes if p.pid)

    @property
    def tls_handshakes(self) -> int:
        return sum(p.tls_handshakes for p in self.processes if p.pid)

    def tls_failures(self) -> dict[str, int]:
        """Failed TLS handshakes of the live children, by TLS_FAILURES."""
        live = [p.tls_failures for p in self.processes if p.pid]
        return dict(zip(TLS_FAILURES, map(sum, zip(*live)) if live else (0,) * len(TLS_FAILURES)))

    def status_line(self, max_servers: int | None = None, threads_per_child: int | None = None) -> str:
        """One character per worker slot, like mod_status: "." for an open slot.

        When the configured daemon limit and ThreadsPerChild are given, dead
        slots beyond them (Apache's SERVER_DISABLED) are left out, as httpd
        2.4's mod_status writes them (checked against Apache 2.4.71: ServerLimit
        4 x ThreadLimit 8 with 3 x 4 configured prints 12 characters). Older
        2.4 releases printed them as spaces, which made the line end in blanks.
        A busy slot beyond the limits (an old child finishing) still shows.
        """
        chars = STATUS_CHARS
        out = []
        for i, p in enumerate(self.processes):
            for j, w in enumerate(p.workers):
                st = w.status
                if st == SERVER_DEAD and ((max_servers is not None and i >= max_servers)
                                          or (threads_per_child is not None and j >= threads_per_child)):
                    continue
                out.append(chars[st] if 0 <= st < len(chars) else "?")
        return "".join(out)

    def count_status(self, status: int) -> int:
        return sum(1 for p in self.processes for w in p.workers if w.status == status)

    def responses_by_code(self) -> dict[str, int]:
        """Responses written by status code ("200", ..., "other"), every slot
        together, zeroed by a HUP: each code of RESPONSE_CODES, then "other"
        (zeros unless the snapshot was taken with responses=True)."""
        rows = [p.responses for p in self.processes if p.responses]
        totals = tuple(map(sum, zip(*rows))) if rows else (0,) * (RESPONSE_OTHER + 1)
        return dict(zip((*map(str, RESPONSE_CODES), "other"), totals))

    @property
    def resident_bytes(self) -> int:
        """The live children's resident memory, summed (shared pages count once per child)."""
        return sum(p.rss for p in self.processes if p.pid)


# --- records ---------------------------------------------------------------

class ProcessRecord:
    """One slot's process record: a master sub-record and a child sub-record."""

    __slots__ = ("_mm", "_off", "_coff", "_cause_off", "_status_offs", "_cseq", "_cpid", "_conn", "_ka",
                 "_ling", "_na", "_wr", "_static_off", "_static", "_static_bytes", "_toff", "_tseq", "_tpid",
                 "_rss", "response_codes")

    def __init__(self, mm: mmap.mmap, off: int, worker_off: int = 0, threads: int = 0,
                 codes_off: int = -1) -> None:
        self._mm = mm
        self._off = off
        # Native 8-byte cells: a store to one is one aligned machine store
        # (memoryview writes it with a single memcpy of 8 bytes), so no
        # reader sees half of it, and no seqlock is needed.
        view = memoryview(mm)
        self._rss = view[off + _P_RSS_OFF:off + PROCESS_SIZE].cast("Q")
        # The listener's row of responses by status code: it adds 1 to
        # response_codes[response_cell(status)] per error response it writes.
        self.response_codes = view[codes_off:codes_off + _CODES.size].cast("Q") if codes_off >= 0 else None
        self._coff = off + _PCHILD_OFF
        self._cause_off = off + _P_CAUSE_OFF
        self._static_off = off + _PSTATIC_OFF
        self._toff = off + _PTLS_OFF
        self._tpid = 0
        self._status_offs = [worker_off + t * WORKER_SIZE + _W_STATUS_OFF for t in range(threads)]
        self._cpid = 0  # pid that owns the Python-side child state below

    # master side: rare writes, so the seq is read back rather than cached
    def _write_master(self, pid: int, generation: int, quiescing: bool, draining: bool = False) -> None:
        mm, off = self._mm, self._off
        seq = _SEQ.unpack_from(mm, off)[0] | 1  # odd, even if a write was interrupted
        _SEQ.pack_into(mm, off, seq)
        _PMASTER.pack_into(mm, off, seq, pid, generation, quiescing, draining)
        _SEQ.pack_into(mm, off, seq + 1)

    def spawned(self, pid: int, generation: int, draining: bool = False) -> None:
        self._write_master(pid, generation, False, draining)

    def set_quiescing(self, quiescing: bool) -> None:
        _, pid, generation, _, draining = _PMASTER.unpack_from(self._mm, self._off)
        self._write_master(pid, generation, quiescing, draining)

    def set_draining(self, draining: bool) -> None:
        _, pid, generation, quiescing, _ = _PMASTER.unpack_from(self._mm, self._off)
        self._write_master(pid, generation, quiescing, draining)

    def going_away(self) -> str | None:
        """"stopping" or "draining" when the master has told this slot's child
        so, else None (HealthPath's question, asked per request: two bytes
        read without the seqlock, as a byte cannot tear)."""
        _, _, _, quiescing, draining = _PMASTER.unpack_from(self._mm, self._off)
        return "stopping" if quiescing else "draining" if draining else None

    def clear(self) -> None:
        """The child was reaped: free the slot and, as Apache's master does, mark
        its threads DEAD (a crashed child cannot have done so itself)."""
        mm = self._mm
        _, _, generation, _, _ = _PMASTER.unpack_from(mm, self._off)
        self._write_master(0, generation, False)
        # The writers are dead, so the master may write their single bytes:
        # the successor starts with no recycle cause, its threads DEAD.
        mm[self._cause_off] = 0
        self._rss[0] = 0
        for off in self._status_offs:
            mm[off] = SERVER_DEAD

    def publish_rss(self, rss: int) -> None:
        """The child's resident memory in bytes (any thread of the child:
        the last reading wins, and every reading is a true one)."""
        self._rss[0] = rss

    # child side: the listener thread is the only writer
    def _adopt(self, pid: int) -> None:
        # First write from this process: a fresh child starts from zero
        # whatever a dead predecessor left behind.
        self._cpid = pid
        self._cseq = (_SEQ.unpack_from(self._mm, self._coff)[0] + 1) & ~1
        self._conn = self._ka = self._ling = self._wr = 0
        self._na = False
        # Slot counters: carried on from the slot's previous child.
        self._static, self._static_bytes = _PSTATIC.unpack_from(self._mm, self._static_off)

    def _write_child(self) -> None:
        mm, off = self._mm, self._coff
        seq = self._cseq + 1
        _SEQ.pack_into(mm, off, seq)
        _PCHILD.pack_into(mm, off, seq, self._cpid, self._conn, self._ka, self._ling, self._wr,
                          self._na)
        _PSTATIC.pack_into(mm, self._static_off, self._static, self._static_bytes)
        self._cseq = seq = seq + 1
        _SEQ.pack_into(mm, off, seq)

    def set_connections(self, connections: int, keep_alive: int, lingering_close: int = 0,
                        writing: int = 0) -> None:
        pid = os.getpid()
        if pid != self._cpid:
            self._adopt(pid)
        self._conn = connections
        self._ka = keep_alive
        self._ling = lingering_close
        self._wr = min(writing, 0xFFFF)  # a two-byte field
        self._write_child()

    def count_static(self, nbytes: int) -> None:
        """The listener served a response from an Alias: ``nbytes`` went out."""
        pid = os.getpid()
        if pid != self._cpid:
            self._adopt(pid)
        self._static += 1
        self._static_bytes += nbytes
        self._write_child()

    def set_not_accepting(self, not_accepting: bool) -> None:
        pid = os.getpid()
        if pid != self._cpid:
            self._adopt(pid)
        self._na = bool(not_accepting)
        self._write_child()

    def set_tls(self, connections: int, handshakes: int, failures: Any) -> None:
        """The child's TLS counts (its listener thread writes them): open TLS
        connections, handshakes in progress, failures by TLS_FAILURES."""
        mm, off = self._mm, self._toff
        pid = os.getpid()
        if pid != self._tpid:
            self._tpid = pid
            self._tseq = (_SEQ.unpack_from(mm, off)[0] + 1) & ~1
        seq = self._tseq + 1
        _SEQ.pack_into(mm, off, seq)
        _PTLS.pack_into(mm, off, seq, pid, connections, handshakes, *failures)
        self._tseq = seq = seq + 1
        _SEQ.pack_into(mm, off, seq)

    def set_recycle_cause(self, cause: int) -> None:
        """The child reached a limit (RECYCLE_*) and is recycling: the master
        counts it under this cause when it reaps the child. Any thread of the
        child may call it (a single byte, outside the seqlock); the first
        limit reached is the one kept."""
        if not self._mm[self._cause_off]:
            self._mm[self._cause_off] = cause


class WorkerRecord:
    """One worker thread's record. Exactly one thread writes a given record, so
    it keeps its own copy of the counters and the sequence number."""

    __slots__ = ("_mm", "_off", "_seq_off", "_status_off", "_begin_off", "_end_off", "_seq",
                 "_start", "_acc", "_bytes", "_dur", "_my_acc", "_my_bytes",
                 "_conn_acc", "_conn_bytes", "_buckets", "_bucket_offs", "_codes")

    def __init__(self, mm: mmap.mmap, off: int, codes_off: int) -> None:
        self._mm = mm
        self._off = off
        self._seq_off = off
        self._status_off = off + _W_STATUS_OFF
        self._begin_off = off + _W_BEGIN_OFF
        self._end_off = off + _W_END_OFF
        # Each bucket's counter's own offset, so end_request writes only the one it bumps.
        self._bucket_offs = tuple(off + _W_BUCKETS_OFF + 8 * i for i in range(len(DURATION_BUCKETS) + 1))
        # This worker's row of responses by status code (see ProcessRecord.response_codes).
        self._codes = memoryview(mm)[codes_off:codes_off + _CODES.size].cast("Q")
        self._load()

    def _load(self) -> None:
        mm, off = self._mm, self._off
        self._seq = (_SEQ.unpack_from(mm, off)[0] + 1) & ~1
        self._dur, self._acc, self._bytes = _W_SLOT.unpack_from(mm, off + _W_SLOT_OFF)
        self._buckets = list(_W_BUCKETS.unpack_from(mm, off + _W_BUCKETS_OFF))
        self._start = _W_BEGIN.unpack_from(mm, self._begin_off)[2]
        self._my_acc = self._my_bytes = self._conn_acc = self._conn_bytes = 0

    def thread_started(self, pid: int, tid: int, generation: int) -> None:
        """A new thread takes the slot: READY, child/connection counters zero, slot counters kept."""
        self._load()  # the slot may have been used by another process since this object was made
        mm, off = self._mm, self._off
        seq = self._seq + 1
        _SEQ.pack_into(mm, off, seq)
        mm[self._status_off] = SERVER_READY
        _W_END.pack_into(mm, self._end_off, 0.0, 0.0, 0.0, self._dur,
                         self._acc, self._bytes, 0, 0, 0, 0)
        _W_IDENT.pack_into(mm, off + _W_IDENT_OFF, pid, tid, generation)
        self._seq = seq = seq + 1
        _SEQ.pack_into(mm, off, seq)

    def set_status(self, status: int) -> None:
        # One byte cannot tear, so no seqlock round trip on the hottest call.
        self._mm[self._status_off] = status

    def begin_connection(self, client: str) -> None:
        mm, off = self._mm, self._off
        self._conn_acc = self._conn_bytes = 0
        seq = self._seq + 1
        _SEQ.pack_into(mm, off, seq)
        _W_CONN.pack_into(mm, off + _W_CONN_OFF, 0, 0)
        _W_CLIENT.pack_into(mm, off + _W_CLIENT_OFF, client.encode("ascii", "replace"))
        self._seq = seq = seq + 1
        _SEQ.pack_into(mm, off, seq)

    def begin_request(self, request_line: bytes, _now=time.time, _pack=_W_BEGIN.pack_into,
                      _seq=_SEQ.pack_into, _busy=SERVER_BUSY_WRITE) -> None:
        mm = self._mm
        self._start = now = _now()
        seq = self._seq + 1
        _seq(mm, self._seq_off, seq)
        _pack(mm, self._begin_off, request_line, _busy, now, now)  # 's' cuts to 64 bytes
        self._seq = seq = seq + 1
        _seq(mm, self._seq_off, seq)

    def end_request(self, bytes_sent: int, status: int = 0, _now=time.time, _pack=_W_END.pack_into,
                    _seq=_SEQ.pack_into, _u64=_U64.pack_into, _bucket=bisect_left,
                    _bounds=DURATION_BUCKETS, _cell=_RESPONSE_CELL) -> None:
        """The request ended; ``status``: the code of the response this
        worker wrote (0 when it wrote none: the listener writes an error
        response the worker decided on, and counts it)."""
        self._codes[_cell[status]] += 1  # outside the seqlock (an aligned 8-byte cell)
        mm = self._mm
        now = _now()
        duration = now - self._start
        i = _bucket(_bounds, duration)  # the first bound >= duration: Prometheus' "le"
        buckets = self._buckets
        buckets[i] = in_bucket = buckets[i] + 1
        self._dur = total = self._dur + duration
        self._acc = acc = self._acc + 1
        self._bytes = nbytes = self._bytes + bytes_sent
        self._my_acc = my_acc = self._my_acc + 1
        self._my_bytes = my_bytes = self._my_bytes + bytes_sent
        self._conn_acc = conn_acc = self._conn_acc + 1
        self._conn_bytes = conn_bytes = self._conn_bytes + bytes_sent
        seq = self._seq + 1
        _seq(mm, self._seq_off, seq)
        _pack(mm, self._end_off, now, now, duration, total, acc, nbytes,
              my_acc, my_bytes, conn_acc, conn_bytes)
        _u64(mm, self._bucket_offs[i], in_bucket)
        self._seq = seq = seq + 1
        _seq(mm, self._seq_off, seq)

    def thread_exited(self) -> None:
        self._mm[self._status_off] = SERVER_DEAD


# --- the scoreboard --------------------------------------------------------

class Scoreboard:
    """The whole scoreboard. ``create`` in the master before forking; ``attach``
    from another process (read-only) when it lives in a ScoreBoardFile."""

    def __init__(self, mm: mmap.mmap, server_limit: int, thread_limit: int,
                 path: str | None, owner_pid: int | None, writable: bool) -> None:
        self._mm = mm
        self.server_limit = server_limit
        self.thread_limit = thread_limit
        self.path = path
        self.writable = writable
        self._owner_pid = owner_pid  # removes the file on close; forked children never do
        self._proc_base = COUNTERS_OFF + COUNTERS_SIZE
        self._worker_base = self._proc_base + server_limit * PROCESS_SIZE
        self._codes_base = _records_size(server_limit, thread_limit)
        self._processes: dict[int, ProcessRecord] = {}
        self._workers: dict[tuple[int, int], WorkerRecord] = {}
        self._wcache: dict[bytes, WorkerSnapshot] = {}
        self._last_good: list[bytes] = []  # previous snapshot's records, the fallback for torn reads

    @classmethod
    def create(cls, server_limit: int, thread_limit: int, path: str | None = None,
               group: int | None = None) -> "Scoreboard":
        """A new scoreboard: anonymous shared memory, or the file ``path``,
        made 0600, or 0640 owned by ``group`` when one is given (the children's
        Group: its members may run `mpmserver status`; nobody else reads
        client addresses and request lines)."""
        for name, value in (("ServerLimit", server_limit), ("ThreadLimit", thread_limit)):
            if not 1 <= value <= HARD_LIMIT:
                raise ScoreboardError(f"{name} {value} is outside 1..{HARD_LIMIT}; fix the configuration")
        size = scoreboard_size(server_limit, thread_limit)
        if path is None:
            mm = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_ANONYMOUS", 0x20))
        else:
            # Unlink rather than truncate: a still-running server may map the
            # old file, and shrinking it under that server would SIGBUS it.
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise ScoreboardError(f"cannot remove old ScoreBoardFile {path}: {e.strerror}") from e
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                             SCOREBOARD_FILE_MODE)
            except OSError as e:
                raise ScoreboardError(
                    f"cannot create ScoreBoardFile {path}: {e.strerror}; "
                    "check the directory exists and is writable") from e
            try:
                if group is not None:
                    os.fchown(fd, -1, group)
                    os.fchmod(fd, SCOREBOARD_GROUP_MODE)
                os.ftruncate(fd, size)
                mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
            finally:
                os.close(fd)
        _HEADER.pack_into(mm, 0, MAGIC, LAYOUT_VERSION, GLOBAL_SIZE, server_limit, thread_limit,
                          PROCESS_SIZE, WORKER_SIZE)
        sb = cls(mm, server_limit, thread_limit, path, os.getpid(), True)
        sb._write_global(0, time.time(), os.getpid())
        return sb

    @classmethod
    def attach(cls, path: str) -> "Scoreboard":
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ScoreboardError(f"scoreboard file {path} does not exist; is the server running "
                                  "with this ScoreBoardFile?") from None
        except OSError as e:
            raise ScoreboardError(f"cannot open scoreboard file {path}: {e.strerror}") from e
        try:
            st_size = os.fstat(fd).st_size
            if st_size < GLOBAL_SIZE:
                raise ScoreboardError(f"{path} is not an mpmserver scoreboard file (only {st_size} bytes)")
            magic, version, gsize, sl, tl, psize, wsize = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
            if magic != MAGIC:
                raise ScoreboardError(f"{path} is not an mpmserver scoreboard file (bad magic {magic!r})")
            if (version, gsize, psize, wsize) != (LAYOUT_VERSION, GLOBAL_SIZE, PROCESS_SIZE, WORKER_SIZE):
                raise ScoreboardError(
                    f"scoreboard file {path} has layout version {version}; this mpmserver reads "
                    f"version {LAYOUT_VERSION}. Use the mpmserver version that runs the server.")
            if not (1 <= sl <= HARD_LIMIT and 1 <= tl <= HARD_LIMIT):
                raise ScoreboardError(f"{path} is corrupt (ServerLimit {sl}, ThreadLimit {tl})")
            size = scoreboard_size(sl, tl)
            if st_size < size:
                raise ScoreboardError(f"scoreboard file {path} is truncated ({st_size} of {size} bytes)")
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        return cls(mm, sl, tl, path, None, False)

    # global record (master is the only writer)
    def _read_global(self) -> tuple[int, float, int]:
        mm = self._mm
        for _ in range(_READ_RETRIES):
            seq, gen, rt, mpid = _GLOBAL.unpack_from(mm, _GLOBAL_OFF)
            if not seq & 1 and _SEQ.unpack_from(mm, _GLOBAL_OFF)[0] == seq:
                return gen, rt, mpid
        return gen, rt, mpid

    def _write_global(self, generation: int, restart_time: float, master_pid: int) -> None:
        mm = self._mm
        seq = _SEQ.unpack_from(mm, _GLOBAL_OFF)[0] | 1
        _SEQ.pack_into(mm, _GLOBAL_OFF, seq)
        _GLOBAL.pack_into(mm, _GLOBAL_OFF, seq, generation, restart_time, master_pid)
        _SEQ.pack_into(mm, _GLOBAL_OFF, seq + 1)

    @property
    def generation(self) -> int:
        return self._read_global()[0]

    @generation.setter
    def generation(self, value: int) -> None:
        _, rt, mpid = self._read_global()
        self._write_global(value, rt, mpid)

    @property
    def restart_time(self) -> float:
        return self._read_global()[1]

    @restart_time.setter
    def restart_time(self, value: float) -> None:
        gen, _, mpid = self._read_global()
        self._write_global(gen, value, mpid)

    @property
    def master_pid(self) -> int:
        return self._read_global()[2]

    @master_pid.setter
    def master_pid(self, value: int) -> None:
        gen, rt, _ = self._read_global()
        self._write_global(gen, rt, value)

    # master counters (master is the only writer)
    def _bump(self, rel_off: int) -> None:
        mm = self._mm
        seq = _SEQ.unpack_from(mm, COUNTERS_OFF)[0] | 1
        _SEQ.pack_into(mm, COUNTERS_OFF, seq)
        off = COUNTERS_OFF + rel_off
        _U64.pack_into(mm, off, _U64.unpack_from(mm, off)[0] + 1)
        _SEQ.pack_into(mm, COUNTERS_OFF, seq + 1)

    def count_spawn(self) -> None:
        """The master forked a child."""
        self._bump(_C_SPAWNS_OFF)

    def count_restart(self, graceful: bool) -> None:
        """The master began a new generation: graceful (USR1) or HUP."""
        self._bump(_C_GRACEFUL_OFF if graceful else _C_HUP_OFF)

    def count_restart_failure(self) -> None:
        """A restart was abandoned or skipped: what served before serves on."""
        self._bump(_C_RESTART_FAILURES_OFF)

    def count_exit(self, cause: str) -> None:
        """The master reaped a child that exited for ``cause`` (one of EXIT_CAUSES)."""
        self._bump(_C_EXITS_OFF + 8 * EXIT_CAUSES.index(cause))

    def _check(self, slot: int, thread: int = 0) -> None:
        if not (0 <= slot < self.server_limit and 0 <= thread < self.thread_limit):
            raise IndexError(f"scoreboard slot ({slot}, {thread}) outside "
                             f"{self.server_limit} x {self.thread_limit}")

    def process(self, slot: int) -> ProcessRecord:
        rec = self._processes.get(slot)
        if rec is None:
            self._check(slot)
            rec = self._processes[slot] = ProcessRecord(
                self._mm, self._proc_base + slot * PROCESS_SIZE,
                self._worker_base + slot * self.thread_limit * WORKER_SIZE, self.thread_limit,
                self._codes_row(slot, -1))
        return rec

    def fewest_connections(self, exclude_slot: int) -> int | None:
        """The fewest open connections among the other live, non-stopping
        children that accept; None if there is no such child.

        Called by a listener at accept time, so it reads the process records
        without the seqlock: a torn read can only give a slightly wrong count,
        which admission tolerates."""
        mm = self._mm
        base = self._proc_base
        best = None
        master_unpack = _PMASTER.unpack_from
        child_unpack = _PCHILD.unpack_from
        for slot in range(self.server_limit):
            if slot == exclude_slot:
                continue
            off = base + slot * PROCESS_SIZE
            _, pid, _, quiescing, _ = master_unpack(mm, off)
            if not pid or quiescing:
                continue
            _, cpid, connections, _, _, _, not_accepting = child_unpack(mm, off + _PCHILD_OFF)
            if cpid != pid or not_accepting:
                continue
            if best is None or connections < best:
                best = connections
        return best

    def idle_siblings(self, exclude_slot: int, idle_since: float = float("inf")) -> tuple[list[tuple[int, int]], float]:
        """(slot, idle workers) of every other live, non-stopping, accepting
        child with at least one idle worker: READY, its last request ended
        before ``idle_since`` (epoch; by default any READY worker); and the
        earliest end of a last request among the READY workers not counted
        (inf when none): until that is ``idle_since`` old, no more can count.

        Read only for a request that would wait in its own child (a
        transfer to a sibling), not per request; without the seqlock, like
        fewest_connections: a status byte cannot tear, and a count one
        moment old only costs the sibling a queued request."""
        mm = self._mm
        base = self._proc_base
        threads = self.thread_limit
        out = []
        unsettled = float("inf")
        for slot in range(self.server_limit):
            if slot == exclude_slot:
                continue
            off = base + slot * PROCESS_SIZE
            _, pid, _, quiescing, _ = _PMASTER.unpack_from(mm, off)
            if not pid or quiescing:
                continue
            _, cpid, _, _, _, _, not_accepting = _PCHILD.unpack_from(mm, off + _PCHILD_OFF)
            if cpid != pid or not_accepting:
                continue
            first = self._worker_base + slot * threads * WORKER_SIZE
            if SERVER_READY not in mm[first + _W_STATUS_OFF:first + threads * WORKER_SIZE:WORKER_SIZE]:
                continue
            idle = 0
            for woff in range(first, first + threads * WORKER_SIZE, WORKER_SIZE):
                if mm[woff + _W_STATUS_OFF] == SERVER_READY:
                    last_used = _D.unpack_from(mm, woff + _W_LAST_USED_OFF)[0]
                    if last_used < idle_since:
                        idle += 1
                    elif last_used < unsettled:
                        unsettled = last_used
            if idle:
                out.append((slot, idle))
        return out, unsettled

    def worker(self, slot: int, thread: int) -> WorkerRecord:
        rec = self._workers.get((slot, thread))
        if rec is None:
            self._check(slot, thread)
            off = self._worker_base + (slot * self.thread_limit + thread) * WORKER_SIZE
            rec = self._workers[(slot, thread)] = WorkerRecord(self._mm, off, self._codes_row(slot, thread))
        return rec

    def _codes_row(self, slot: int, thread: int) -> int:
        """Offset of a writer's row of responses: the listener's (thread -1), a worker's."""
        return self._codes_base + (slot * (self.thread_limit + 1) + thread + 1) * _CODES.size

    def reset(self) -> None:
        """Zero every process and worker record (HUP), keeping the global
        record and the master counters. Call only with no children running."""
        mm = self._mm
        start = self._proc_base
        mm[start:] = bytes(len(mm) - start)
        self._processes.clear()
        self._workers.clear()
        self._last_good = []

    # reading
    def _consistent(self, regions: list[tuple[int, int]]) -> list[bytes]:
        """Consistent copies of the given (offset, size) records, in order.

        Three whole-map copies (seqs, data, seqs) settle almost every record
        in one pass; only the ones caught mid-write are retried one by one.
        """
        mm = self._mm
        end = self._codes_base  # the records; not the table of responses
        first = mm[:end]
        data = mm[:end]
        last = mm[:end]
        seq_at = _SEQ.unpack_from
        prev = self._last_good
        out = []
        for k, (off, size) in enumerate(regions):
            s1 = seq_at(first, off)[0]
            # Bulk copies (rep movs) do not promise the order of their loads
            # and stores within one record, so besides the sequence numbers the
            # record must read the same in two copies.
            if not s1 & 1 and s1 == seq_at(last, off)[0]:
                rec = data[off:off + size]
                if rec == last[off:off + size]:
                    out.append(rec)
                    continue
            out.append(self._retry(off, size, prev[k] if k < len(prev) else None))
        self._last_good = out
        return out

    def _retry(self, off: int, size: int, good: bytes | None) -> bytes:
        mm = self._mm
        seq_at = _SEQ.unpack_from
        for _ in range(_READ_RETRIES):
            s1 = seq_at(mm, off)[0]
            buf = mm[off:off + size]
            if not s1 & 1 and mm[off:off + size] == buf and seq_at(mm, off)[0] == s1:
                return buf
        # A writer that keeps the record busy (or died mid-write): fall back
        # to the last good copy, or to a blank record rather than torn data.
        return good if good is not None else bytes(size)

    def snapshot(self, responses: bool = False) -> ScoreboardSnapshot:
        """A consistent copy of the records; ``responses``: with each slot's
        responses by status code (read only for /metrics: the master's
        snapshot each second need not touch the table)."""
        gen, rt, mpid = self._read_global()
        sl, tl = self.server_limit, self.thread_limit
        regions: list[tuple[int, int]] = [(COUNTERS_OFF, COUNTERS_SIZE)]
        for i in range(sl):
            base = self._proc_base + i * PROCESS_SIZE
            regions.append((base, 32))
            regions.append((base + _PCHILD_OFF, _PSTATIC_OFF + _PSTATIC.size - _PCHILD_OFF))
            regions.append((base + _PTLS_OFF, _PTLS.size))
        wbase = self._worker_base
        for k in range(sl * tl):
            regions.append((wbase + k * WORKER_SIZE, WORKER_SIZE))
        bufs = self._consistent(regions)
        counters = _counters(bufs[0])
        pm_unpack, pc_unpack, w_unpack = _PMASTER.unpack, _PCHILD.unpack_from, _WORKER.unpack_from
        b_unpack = _W_BUCKETS.unpack_from
        procs = []
        widx = 1 + 3 * sl
        no_failures = (0,) * len(TLS_FAILURES)
        mm, rss_at = self._mm, _RSS.unpack_from
        old_cache, cache = self._wcache, {}
        for i in range(sl):
            _, pid, pgen, quiescing, draining = pm_unpack(bufs[1 + 3 * i])
            child = bufs[2 + 3 * i]
            _, tpid, tls_conns, tls_hs, *tls_failures = _PTLS.unpack(bufs[3 + 3 * i])
            if not pid or tpid != pid:
                tls_conns = tls_hs = 0
                tls_failures = no_failures
            _, cpid, conns, ka, ling, wr, na = pc_unpack(child)
            cause = child[_P_CAUSE_OFF - _PCHILD_OFF]  # the master zeroes it at reap: never a predecessor's
            static, static_bytes = _PSTATIC.unpack_from(child, _PSTATIC_OFF - _PCHILD_OFF)  # slot counters
            rss = rss_at(mm, self._proc_base + i * PROCESS_SIZE + _P_RSS_OFF)[0]
            if not pid or cpid != pid:
                conns = ka = ling = wr = rss = 0
                na = False
            workers = []
            for j in range(tl):
                buf = bufs[widx]
                widx += 1
                # Most records do not change between two snapshots a second
                # apart; reusing their (immutable) snapshots halves the cost.
                ws = old_cache.get(buf) or cache.get(buf)
                if ws is None:
                    (_, req, status, start, last_used, stop, dur, total_dur, acc, nbytes, my_acc,
                     my_bytes, conn_acc, conn_bytes, wpid, tid, wgen, client) = w_unpack(buf)
                    ws = WorkerSnapshot(
                        status, wpid, tid, wgen, acc, nbytes, my_acc, my_bytes, conn_acc, conn_bytes,
                        start, stop, last_used, dur, _text(req), _text(client), total_dur,
                        b_unpack(buf, _W_BUCKETS_OFF))
                cache[buf] = ws
                workers.append(ws)
            procs.append(ProcessSnapshot(i, pid, pgen, bool(quiescing), bool(na), conns, ka,
                                         tuple(workers), ling, bool(draining), wr, cause, static,
                                         static_bytes, tls_conns, tls_hs, tuple(tls_failures), rss,
                                         self._responses(i) if responses else ()))
        self._wcache = cache
        return ScoreboardSnapshot(sl, tl, gen, rt, mpid, tuple(procs), counters)

    def _responses(self, slot: int) -> tuple[int, ...]:
        """The slot's responses by status code: its listener's row and its
        workers' summed, without the uncounted cell. The cells are read one
        by one, not under a seqlock: each is a counter that only grows."""
        mm = self._mm
        unpack = _CODES.unpack_from
        first = self._codes_row(slot, -1)
        rows = [unpack(mm, off) for off in range(first, self._codes_row(slot, self.thread_limit), _CODES.size)]
        return tuple(map(sum, zip(*rows)))[:RESPONSE_NONE]

    def close(self, remove: bool = True) -> None:
        """Unmap; remove the file if this process created it and ``remove`` is true."""
        mm, self._mm = self._mm, None
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass  # a snapshot buffer still references the map; the GC closes it
        if remove and self.path and self._owner_pid == os.getpid():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._owner_pid = None


def _counters(raw: bytes) -> MasterCounters:
    _, spawns, graceful, hup, *exits, failures = _COUNTERS.unpack(raw)
    return MasterCounters(spawns, graceful, hup, tuple(exits), failures)


def _text(raw: bytes) -> str:
    # Request lines come from clients: show bytes that are not printable ASCII
    # as \xNN so nothing can drive a terminal or break a page.
    s = raw.rstrip(b"\0").decode("ascii", "backslashreplace")
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)
