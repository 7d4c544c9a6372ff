"""Running wrk (when installed) and reading its output, to cross-check
`mpmserver bench` and to load peers in benchmarks/compare.py."""

from __future__ import annotations

import re
import shutil
import subprocess

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LAT = re.compile(r"^\s*(50|75|90|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)", re.M)
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk_path() -> str | None:
    return shutil.which("wrk")


def parse_wrk(text: str) -> dict:
    """requests/s, latency percentiles (ms, with --latency) and errors from
    wrk's text output."""
    m = _RPS.search(text)
    if not m:
        raise ValueError(f"no 'Requests/sec' in wrk output:\n{text[-2000:]}")
    out: dict = {"requests_per_s": float(m.group(1)), "latency_ms": {}}
    for pct, value, unit in _LAT.findall(text):
        out["latency_ms"][f"p{pct}"] = float(value) * _UNITS[unit]
    t = _TOTAL.search(text)
    if t:
        out["requests"] = int(t.group(1))
        out["duration_s"] = float(t.group(2)) * _UNITS[t.group(3)] / 1000.0
    e = _SOCKERR.search(text)
    out["errors"] = dict(zip(("connect", "read", "write", "timeout"),
                             map(int, e.groups()))) if e else {}
    n = _NON2XX.search(text)
    out["non_2xx"] = int(n.group(1)) if n else 0
    return out


def run_wrk(url: str, connections: int, duration: float, threads: int = 1,
            timeout: float = 5.0) -> dict:
    """Run wrk with --latency and return parse_wrk's figures."""
    exe = wrk_path()
    if exe is None:
        raise FileNotFoundError("wrk is not installed (apt-get install wrk)")
    threads = max(1, min(threads, connections))
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
           f"--timeout={max(1, round(timeout))}s", "--latency", url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout + 30)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stderr.strip() or res.stdout[-500:]}")
    return parse_wrk(res.stdout)
