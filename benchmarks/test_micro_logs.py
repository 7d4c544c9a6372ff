"""Per-request logging costs: one combined access-log line (the Date header: test_micro_framing.py).

Run: python -m pytest benchmarks/test_micro_logs.py --benchmark-only -q -p no:cacheprovider
"""

from __future__ import annotations

import time

from mpmserver.logs import COMBINED, AccessLog, AccessRecord, compile_format


def typical_record() -> AccessRecord:
    now = time.time()
    return AccessRecord(
        remote_addr="127.0.0.1", remote_port=51234, local_port=8080,
        method=b"GET", target=b"/api/items?page=2", protocol="HTTP/1.1",
        request_line="GET /api/items?page=2 HTTP/1.1", status=200, bytes_sent=5120,
        request_headers=[
            (b"host", b"localhost:8080"),
            (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
            (b"accept", b"text/html,application/xhtml+xml"),
            (b"accept-encoding", b"gzip, deflate, br"),
            (b"referer", b"http://localhost:8080/api/items?page=1"),
            (b"connection", b"keep-alive"),
        ],
        response_headers=[(b"content-type", b"application/json"), (b"content-length", b"5120")],
        start_time=now, duration=0.000843, remote_user=None)


def test_format_combined_line(benchmark):
    fmt = compile_format(COMBINED)
    rec = typical_record()
    line = benchmark(fmt, rec)
    assert line.endswith('"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"')


def test_access_log_write_combined(benchmark, tmp_path):
    alog = AccessLog(str(tmp_path / "access.log"), COMBINED)
    rec = typical_record()
    benchmark(alog.log, rec)
    alog.close()
    assert (tmp_path / "access.log").stat().st_size > 0

