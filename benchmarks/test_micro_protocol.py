"""Per-request cost of the head checks (runs for every request).

    python -m pytest -q -p no:cacheprovider benchmarks/test_micro_protocol.py \
        --benchmark-columns=min,median,mean,rounds

Each benchmark also asserts the result, so a fast wrong answer fails.
"""

from __future__ import annotations

from benchmarks.apps import POST_10K  # what wrk sends for compare.py's post10k
from mpmserver import config as configmod
from mpmserver.http.errors import error_response
from mpmserver.http.protocol import (
    DROP_CONTENT_LENGTH,
    MUST_CLOSE,
    HeadRules,
    check_head,
    declared_body,
    split_head,
    take_head,
)

RULES = HeadRules.from_config(configmod.from_kwargs())  # the defaults (Apache's), as the server reads them
LIMITS = (RULES.line, RULES.fields, RULES.field_size)

# What Firefox sends for a page: 273 bytes, 6 header lines.
BROWSER_HEAD = (
    b"GET /index.html?q=1 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
CHUNKED_UPLOAD_HEAD = (
    b"POST /upload HTTP/1.1\r\nHost: www.example.com\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 10\r\nContent-Type: application/octet-stream\r\n\r\n"
)


def test_check_head_browser_request(benchmark):
    assert benchmark(check_head, BROWSER_HEAD, *LIMITS) == 0


def test_split_head_browser_request(benchmark):
    assert benchmark(split_head, BROWSER_HEAD) == (0, len(BROWSER_HEAD))


def test_split_and_check_browser_request(benchmark):
    # What the listener (and a worker, for a pipelined request) does with a
    # head that arrived in one read: protocol.take_head.
    assert benchmark(take_head, BROWSER_HEAD, 0, RULES)[2] == 0


def test_listener_post_head(benchmark):
    # What the listener does with a POST whose head and body came in one
    # read: find and check the head, then the body's length to wait for.
    def listener(buf: bytes) -> int:
        buf, end, flags, _ = take_head(buf, 0, RULES)
        return flags + declared_body(buf[:end])

    assert benchmark(listener, POST_10K) == 10240


def test_check_head_chunked_with_content_length(benchmark):
    # The rare slow path (Transfer-Encoding present).
    assert benchmark(check_head, CHUNKED_UPLOAD_HEAD, *LIMITS) == MUST_CLOSE | DROP_CONTENT_LENGTH


def test_error_response_cached(benchmark):
    date = b"Mon, 23 Nov 2026 15:00:00 GMT"
    assert benchmark(error_response, 400, "bad request", b"mpmserver/0.1.0", date).startswith(b"HTTP/1.1 400 ")
