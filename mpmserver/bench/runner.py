"""Running the load in one or several generator processes and merging it."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from dataclasses import replace
from urllib.parse import urlsplit

from ..eventloop import choose as choose_event_loop
from .load import LoadConfig, WorkerResult, run_worker
from .report import summarize

# Processes started this far in the future begin sending together.
_START_DELAY = 0.3
PROGRESS_AFTER = 3.0


class BenchError(Exception):
    """A problem with the command line or target a person can fix."""


def parse_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, request target, Host header) of an http:// URL."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme != "http":
        raise BenchError(f"only http:// URLs are supported, not {parts.scheme}:// ({url})")
    if not parts.hostname:
        raise BenchError(f"no host in URL {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise BenchError(f"bad port in URL {url!r}") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.hostname, port, target, parts.netloc


def split_evenly(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def plan(base: LoadConfig, procs: int) -> list[LoadConfig]:
    """One config per process: connections and request counts split evenly,
    open-loop phases continuing across processes."""
    procs = max(1, min(procs, base.connections))
    conns = split_evenly(base.connections, procs)
    counts = split_evenly(base.requests, procs) if base.requests is not None else [None] * procs
    out, first = [], 0
    for c, n in zip(conns, counts):
        out.append(replace(base, connections=c, requests=n, total_connections=base.connections,
                           first_connection=first))
        first += c
    return out


def _child(cfg: LoadConfig, progress, slot: int, conn) -> None:
    try:
        conn.send(run_worker(cfg, progress, slot))
    except BaseException as exc:  # report, do not hang the parent
        conn.send(exc)
    finally:
        conn.close()


def _progress_line(progress, started: float, stop: threading.Event, stream) -> None:
    last_n, last_t = 0, time.monotonic()
    while not stop.wait(1.0):
        now = time.monotonic()
        n = sum(progress)
        if now - started < PROGRESS_AFTER:
            last_n, last_t = n, now
            continue
        rate = (n - last_n) / (now - last_t)
        last_n, last_t = n, now
        stream.write(f"\r  {now - started:6.1f} s  {n:10d} responses  {rate:9.0f}/s ")
        stream.flush()
    stream.write("\r" + " " * 60 + "\r")
    stream.flush()


def run_load(base: LoadConfig, procs: int = 1, show_progress: bool = False,
             meta: dict | None = None) -> dict:
    """Run the load described by `base` (its connections and requests are
    totals) in `procs` processes and return the merged report."""
    configs = plan(base, procs)
    start_at = time.monotonic() + (_START_DELAY if len(configs) > 1 else 0.0)
    configs = [replace(c, start_at=start_at) for c in configs]
    progress = multiprocessing.RawArray("q", len(configs))
    loop_name, _ = choose_event_loop("uvloop")  # the loop run_worker() runs
    results: list[WorkerResult] = []
    if len(configs) == 1:
        stop, th = _start_progress(progress, show_progress)
        try:
            results.append(run_worker(configs[0], progress, 0))
        finally:
            _stop_progress(stop, th)
    else:
        # fork, not spawn: children inherit the prepared request and start at once.
        ctx = multiprocessing.get_context("fork")
        children = []
        for i, cfg in enumerate(configs):
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(cfg, progress, i, send), daemon=True)
            p.start()
            send.close()
            children.append((p, recv))
        stop, th = _start_progress(progress, show_progress)
        try:
            for p, recv in children:
                try:
                    r = recv.recv()
                except EOFError:
                    raise BenchError(f"generator process {p.pid} died "
                                     f"(exit code {p.exitcode})") from None
                if isinstance(r, BaseException):
                    raise BenchError(f"generator process failed: {r!r}") from r
                results.append(r)
        finally:
            _stop_progress(stop, th)
            for p, _ in children:
                p.join(5)
                if p.is_alive():
                    p.kill()
    meta = dict(meta or {})
    meta.setdefault("procs", len(configs))
    meta.setdefault("event_loop", loop_name)
    return summarize(results, meta)


def _start_progress(progress, show: bool):
    if not show:
        return None, None
    stop = threading.Event()
    th = threading.Thread(target=_progress_line, args=(progress, time.monotonic(), stop, sys.stderr),
                          daemon=True)
    th.start()
    return stop, th


def _stop_progress(stop, th) -> None:
    if stop is not None:
        stop.set()
        th.join(2)
