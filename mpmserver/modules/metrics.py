"""MetricsPath: Prometheus metrics from the scoreboard (text format 0.0.4).

``render_metrics`` is a pure function of a ScoreboardSnapshot, like the
mod_status renderers; ``metrics_app`` serves it from the children, allowed
by MetricsAllow as the status page is by StatusAllow.

Why not prometheus_client: it is built to instrument the process it runs in
(a registry of metric objects that the process updates), and its
multiprocess mode keeps one file per process in a directory that must be
cleaned up as children come and go. Here every number already sits in the
shared scoreboard, written without locks, and any child can read all of it;
the exposition is a pure function of one snapshot. Wrapping that in
prometheus_client would mean a custom collector (GaugeMetricFamily and
friends) around the same snapshot, for a text format of a few lines, and a
dependency the core does not otherwise have (it needs only h11 and uvloop).
Someone who wants it can still write that collector over ``Scoreboard``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, Callable

from ..scoreboard import (
    DURATION_BUCKETS,
    EXIT_CAUSES,
    STATUS_NAMES,
    ProcessSnapshot,
    ScoreboardSnapshot,
)
from .pages import Answer, serve_page

__all__ = ["CONTENT_TYPE", "render_metrics", "metrics_app", "worker_state_names"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "mpmserver_"
# The label values of the histogram buckets, as Prometheus' clients write them.
_LE = (*(repr(float(b)) for b in DURATION_BUCKETS), "+Inf")
# The exit causes that recycles_total counts; crashes have a family of their own.
_RECYCLE_CAUSES = tuple(cause for cause in EXIT_CAUSES if cause != "crash")


def worker_state_names() -> list[str]:
    """Label values of the worker states: the scoreboard's names, lower case, words joined by _."""
    return [name.lower().replace(" ", "_") for name in STATUS_NAMES]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self._header(name, kind, help_text)
        for labels, value in samples:
            self._sample(name, labels, value)

    def _header(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {PREFIX}{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}{name} {kind}")

    def _sample(self, name: str, labels: dict[str, str], value: float) -> None:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self.lines.append(f"{PREFIX}{name}{{{label_text}}} {_number(value)}" if label_text
                          else f"{PREFIX}{name} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [({}, value)])

    def histogram(self, name: str, help_text: str,
                  series: Iterable[tuple[dict[str, str], tuple[int, ...], float]]) -> None:
        """One histogram family: per series its labels, its (not cumulative)
        bucket counts, the last one past the highest bound, and its sum."""
        samples = []
        for labels, buckets, total in series:
            running = 0
            for le, n in zip(_LE, buckets):
                running += n
                samples.append((f"{name}_bucket", {**labels, "le": le}, running))
            samples.append((f"{name}_sum", labels, total))
            samples.append((f"{name}_count", labels, running))
        self._header(name, "histogram", help_text)
        for sample, labels, value in samples:
            self._sample(sample, labels, value)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def child_state(p: ProcessSnapshot, generation: int) -> str:
    """starting (no worker past STARTING yet), serving, or stopping (told to, or an old generation)."""
    if p.quiescing or p.generation != generation:
        return "stopping"
    if not p.has_started():
        return "starting"
    return "serving"


def render_metrics(snap: ScoreboardSnapshot, version: str = "") -> str:
    """The metrics page for this snapshot."""
    out = _Exposition()
    live = [p for p in snap.processes if p.pid]
    if version:
        out.family("info", "gauge", "The server software.", [({"version": version}, 1)])
    out.one("generation", "gauge", "The configuration generation: 0 at start, +1 per restart.",
            snap.generation)
    counters = snap.counters
    out.family("restarts_total", "counter", "Restarts since the master started, by kind: graceful (USR1) "
               "and hup (HUP; it zeroes the scoreboard but not this count).",
               [({"kind": "graceful"}, counters.graceful_restarts), ({"kind": "hup"}, counters.hup_restarts)])
    out.one("restart_failures_total", "counter", "Restarts abandoned since the master started: a graceful "
            "restart whose new children could not start, or a HUP whose app or configuration did not "
            "load; what served before serves on.", counters.restart_failures)
    out.one("restart_time_seconds", "gauge", "When the scoreboard was last zeroed (start or HUP), Unix time.",
            snap.restart_time)
    out.one("draining", "gauge", "1 while a graceful stop drains (GracefulStopDrain), else 0.",
            int(any(p.draining for p in live)))
    children = Counter((str(p.generation), child_state(p, snap.generation)) for p in live)
    out.family("children", "gauge", "Child processes by generation and state (starting, serving, stopping).",
               [({"generation": g, "state": s}, n) for (g, s), n in sorted(children.items())])
    states = Counter(w.status for p in live for w in p.workers)
    out.family("workers", "gauge", "Worker thread slots of the live children, by scoreboard state.",
               [({"state": name}, states.get(i, 0)) for i, name in enumerate(worker_state_names())])
    out.one("busy_workers", "gauge", "Workers busy with a request (mod_status's BusyWorkers).", snap.busy_workers)
    out.one("idle_workers", "gauge", "Workers waiting for a connection (mod_status's IdleWorkers).",
            snap.idle_workers)
    out.one("requests_total", "counter", "Requests served, by workers and (files from an Alias) by the "
            "event loops (zeroed by a HUP restart).", snap.total_accesses)
    out.one("bytes_served_total", "counter", "Response bytes served (zeroed by a HUP restart).", snap.total_bytes)
    _request_durations(out, snap)
    _static_files(out, snap)
    out.one("connections_open", "gauge", "Connections open in the children.", snap.conns_total)
    out.one("connections_parked", "gauge", "Keep-alive connections parked in the event loops, waiting for "
            "their next request.", snap.conns_keep_alive)
    out.one("connections_writing", "gauge", "Connections whose response tail the event loops are writing "
            "(mod_status's ConnsAsyncWriting).", snap.conns_writing)
    out.one("connections_lingering", "gauge", "Connections in lingering close.", snap.conns_closing)
    out.one("children_not_accepting", "gauge", "Live children not accepting new connections.",
            sum(1 for p in live if p.not_accepting))
    out.one("tls_connections", "gauge", "TLS connections open in the children, past their handshake.",
            snap.tls_connections)
    out.one("tls_handshakes", "gauge", "TLS handshakes in progress in the children's event loops.",
            snap.tls_handshakes)
    out.family("tls_handshake_failures_total", "counter", "TLS handshakes that failed in the live children, "
               "by reason (a child's count leaves with it).",
               [({"reason": r}, n) for r, n in snap.tls_failures().items()])
    _child_lifecycle(out, snap)
    _responses(out, snap)
    _child_memory(out, snap)
    return out.text()


def _static_files(out: _Exposition, snap: ScoreboardSnapshot) -> None:
    """The files the listeners answered from an Alias, per scoreboard slot
    (slot counters, as the request histograms: they outlive the child)."""
    slots = [p for p in snap.processes if p.pid or p.static_requests]
    out.family("static_responses_total", "counter", "Responses the event loops served from an Alias, no "
               "worker involved, per scoreboard slot (zeroed by a HUP).",
               [({"slot": str(p.slot)}, p.static_requests) for p in slots])
    out.family("static_bytes_total", "counter", "Bytes of those responses, heads included, per scoreboard slot.",
               [({"slot": str(p.slot)}, p.static_bytes) for p in slots])


def _responses(out: _Exposition, snap: ScoreboardSnapshot) -> None:
    """Responses by status code: the app's, the server's pages and the
    error responses the server writes itself (scoreboard.RESPONSE_CODES,
    any other code as "other")."""
    out.family("responses_total", "counter", "Responses written, by status code: the app's and the "
               "server's own (400, 408, 413, 503...); codes without a series of their own count as "
               "code=\"other\". Zeroed by a HUP restart.",
               [({"code": code}, n) for code, n in snap.responses_by_code().items()])


def _child_memory(out: _Exposition, snap: ScoreboardSnapshot) -> None:
    """Each live child's resident memory, as it last read it (after a
    request under MaxMemoryPerChild, else each second)."""
    out.family("child_resident_memory_bytes", "gauge", "Resident memory (RSS) of each live child, "
               "by scoreboard slot and pid; shared pages count in every child that maps them.",
               [({"slot": str(p.slot), "pid": str(p.pid)}, p.rss) for p in snap.processes if p.pid and p.rss])


def _child_lifecycle(out: _Exposition, snap: ScoreboardSnapshot) -> None:
    """The master's counters: since it started, kept across HUP restarts."""
    counters = snap.counters
    exits = counters.exits_by_cause()
    out.one("spawns_total", "counter", "Child processes forked since the master started (a HUP keeps the "
            "count); rate() of it is the spawn rate.", counters.spawns)
    out.family("recycles_total", "counter", "Children that exited since the master started because they "
               "reached MaxConnectionsPerChild (connections), MaxRequestsPerChild (requests) or "
               "MaxMemoryPerChild (memory), or were stopped for a request past RequestTimeout "
               "(request_timeout); a HUP keeps the counts.",
               [({"cause": cause}, exits[cause]) for cause in _RECYCLE_CAUSES])
    out.one("child_crashes_total", "counter", "Children that died since the master started, killed by a "
            "signal or exiting non-zero, without the master asking (RequestTimeout kills are counted "
            "as recycles); a HUP keeps the count.", exits["crash"])


def _request_durations(out: _Exposition, snap: ScoreboardSnapshot) -> None:
    """The request-duration histograms: one series per scoreboard slot that
    is live or has served (its counts outlive its children until a HUP),
    and the whole server's."""
    slots = [p for p in snap.processes if p.pid or p.requests]
    per_slot = [({"slot": str(p.slot)}, p.duration_buckets, p.request_seconds) for p in slots]
    out.histogram("request_duration_seconds", "Time a worker spent on a request (head parsed to "
                  "response written or handed to the event loop), per scoreboard slot: the children that "
                  "held the slot since the last HUP.",
                  per_slot)
    totals = tuple(map(sum, zip(*(buckets for _, buckets, _ in per_slot)))) or (0,) * len(_LE)
    out.histogram("server_request_duration_seconds", "Time to serve a request, all slots together "
                  "(the sum of mpmserver_request_duration_seconds over slots; zeroed by a HUP).",
                  [({}, totals, snap.total_duration)])


def metrics_app(app: Callable, child: Any) -> Callable:
    """Wrap ``app`` so that GET/HEAD of ``config.metrics_path`` is the metrics page;
    clients outside MetricsAllow get 403 (pages.serve_page)."""
    from .. import SERVER_SOFTWARE

    cfg = child.config
    scoreboard = child.scoreboard

    def answer(environ: dict) -> Answer:
        return Answer("200 OK", render_metrics(scoreboard.snapshot(responses=True), SERVER_SOFTWARE).encode(),
                      CONTENT_TYPE)

    return serve_page(app, cfg.metrics_path, answer, what="The metrics page", allow=cfg.metrics_allow,
                      directive="MetricsAllow")
