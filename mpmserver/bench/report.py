"""Turning worker results into the report (a dict, JSON-ready) and its text form."""

from __future__ import annotations

from typing import Iterable

from .histogram import Histogram
from .load import ERROR_KINDS, WorkerResult

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
# A generator process busier than this may be the bottleneck, not the server.
SATURATED_CPU = 0.85


def summarize(results: Iterable[WorkerResult], meta: dict) -> dict:
    """Merge per-process results into one report.

    Rates use the longest measured window of the processes: they start
    together and measure the same span, so this is the run's duration.
    """
    results = list(results)
    hist = Histogram()
    status: dict[str, int] = {}
    errors = dict.fromkeys(ERROR_KINDS, 0)
    examples: dict[str, str] = {}
    for r in results:
        hist.merge(Histogram.from_dict(r.histogram))
        for k, v in r.status.items():
            status[k] = status.get(k, 0) + v
        for k, v in r.errors.items():
            errors[k] += v
        for k, v in r.error_examples.items():
            examples.setdefault(k, v)
    elapsed = max((r.elapsed for r in results), default=0.0) or 1e-9
    responses = sum(r.responses for r in results)
    bytes_read = sum(r.bytes_read for r in results)
    cpu = [r.cpu_seconds / (r.elapsed or 1e-9) for r in results]
    warnings = []
    if cpu and max(cpu) >= SATURATED_CPU:
        warnings.append(
            f"the load generator used {max(cpu):.0%} of a CPU core: it may be the "
            f"bottleneck, not the server; try --procs {len(results) + 1} or wrk "
            f"(on a shared machine, leave cores for the server)")
    rate = meta.get("rate")
    rps = responses / elapsed
    if rate and rps < 0.9 * rate:
        warnings.append(
            f"asked for {rate:g} requests/s but got {rps:.0f}: the server (or the "
            f"generator) could not keep up; latencies include the backlog")
    lat = {name: hist.percentile(p) / 1000.0 for name, p in PERCENTILES}
    lat["max"] = hist.max / 1000.0
    lat["min"] = (hist.min if hist.total else 0) / 1000.0
    lat["mean"] = hist.mean() / 1000.0
    return {
        **meta,
        "duration_s": round(elapsed, 6),
        "requests": sum(r.requests for r in results),
        "responses": responses,
        "errors": errors,
        "errors_total": sum(errors.values()),
        "error_examples": examples,
        "status": dict(sorted(status.items())),
        "requests_per_s": rps,
        "bytes_read": bytes_read,
        "transfer_bytes_per_s": bytes_read / elapsed,
        "latency_ms": lat,
        "generator_cpu": [round(c, 3) for c in cpu],
        "generator_saturated": bool(cpu) and max(cpu) >= SATURATED_CPU,
        "warnings": warnings,
    }


def _ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def _bytes(v: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.1f} {unit}" if unit != "B" else f"{v:.0f} B"
        v /= 1024
    return f"{v:.1f} GB"  # pragma: no cover


def format_text(rep: dict) -> str:
    mode = f"open loop at {rep['rate']:g} req/s" if rep.get("rate") else "closed loop"
    lines = [
        f"{rep['url']}: {rep['connections']} connections, {rep['procs']} process"
        f"{'es' if rep['procs'] != 1 else ''}, pipeline {rep['pipeline']}, {mode}, "
        f"{'keep-alive' if rep['keepalive'] else 'no keep-alive'}, {rep['event_loop']}",
        f"  requests      {rep['requests']} in {rep['duration_s']:.2f} s: "
        f"{rep['responses']} responses, {rep['errors_total']} errors",
        f"  requests/s    {rep['requests_per_s']:.1f}",
        f"  transfer      {_bytes(rep['transfer_bytes_per_s'])}/s ({_bytes(rep['bytes_read'])} read)",
        "  latency       " + "  ".join(
            f"{k} {_ms(rep['latency_ms'][k])}" for k in ("p50", "p90", "p99", "p99.9", "max")),
        "  status        " + (", ".join(f"{k}: {v}" for k, v in rep["status"].items()) or "none"),
    ]
    if rep["errors_total"]:
        lines.append("  errors        " + ", ".join(
            f"{k} {v}" for k, v in rep["errors"].items() if v))
        for k, v in rep["error_examples"].items():
            lines.append(f"    first {k} error: {v}")
    lines.append("  generator CPU " + ", ".join(f"{c:.0%}" for c in rep["generator_cpu"])
                 + " of a core per process")
    if "server" in rep:
        lines += format_server(rep["server"])
    if rep.get("memory"):
        lines.append(format_memory_line(rep["memory"]))
    for w in rep["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def format_server(s: dict) -> list[str]:
    if "unavailable" in s:
        return [f"  scoreboard    unavailable: {s['unavailable']}"]
    lines = [
        f"  scoreboard    {s['samples']} samples: peak busy workers {s['peak_busy']} "
        f"of {s['worker_slots']} running, children started {s['children_started']}, "
        f"recycled {s['children_recycled']}",
        f"  idle workers  min {s['idle_min']}, mean {s['idle_mean']:.1f}, max {s['idle_max']}"
        + (f"; per second: {' '.join(str(v) for v in s['idle_per_second'])}"
           if s["idle_per_second"] else ""),
    ]
    return lines


def format_memory_line(m: dict) -> str:
    """The server's memory after the run (bench/pss.py's figures, bytes)."""
    return (f"  memory        PSS {_bytes(m['pss'])} in {m['processes']} processes "
            f"(RSS {_bytes(m['rss'])}, private {_bytes(m['private'])}), after the load")
