"""Issue 4 over real sockets: limits, status codes, what h11 lets through,
response splitting, and a server that stays up whatever a client sends.

Each test talks raw bytes to the real server (tests/apps/hostile_apps.py).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import pytest

from tests.support.client import parse
from tests.support.hostile import (
    H,
    assert_healthy,
    assert_refused,
    start,
    start_module_server,
)
from tests.support.server import http, wait_for

# -- helpers -------------------------------------------------------------------

def send_in_pieces(port: int, data: bytes, piece: int, stop_on_reply: bool = True,
                   pause: float = 0.0) -> tuple[bytes, int]:
    """Send data in small writes; stop as soon as the server answers.
    ``pause`` spaces the writes so that the server reads them separately.
    Returns (everything received until close, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        while sent < len(data):
            try:
                c.sendall(data[sent:sent + piece])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += piece
            if stop_on_reply and select.select([c], [], [], pause)[0]:
                break
        chunks = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                d = c.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks), min(sent, len(data))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One server for the module: tests that share it must leave it healthy."""
    s = start_module_server(tmp_path_factory, "--limit-request-body", "1000")
    yield s
    s.stop()


# -- limits -------------------------------------------------------------------

def test_request_line_over_limit_request_line_gives_414(hostile):
    at_limit = b"GET /" + b"a" * (8190 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(at_limit) == 8190  # Apache's default LimitRequestLine
    assert parse(http(hostile.port, at_limit + b"\r\n" + H + b"Connection: close\r\n\r\n"))[0] == 404
    over = at_limit.replace(b"/a", b"/aa", 1)
    body = assert_refused(http(hostile.port, over + b"\r\n" + H + b"\r\n"), 414)
    assert "LimitRequestLine" in body
    assert_healthy(hostile)


def test_long_request_line_is_refused_before_it_ends(hostile):
    # 10 kB of request line and no CRLF yet: the server must answer 414 now,
    # not wait for the end of the line (which would end in a 408 after Timeout).
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=10) as c:
        for _ in range(10):
            c.sendall(b"GET /" + b"a" * 995)
        resp = b""
        try:
            while d := c.recv(65536):
                resp += d
        except ConnectionResetError:
            pass
    assert_refused(resp, 414)


def test_header_field_over_limit_request_field_size_gives_431(hostile):
    field = b"X-Big: " + b"v" * (8190 - 7)
    assert len(field) == 8190
    ok = http(hostile.port, b"GET /hello HTTP/1.1\r\n" + H + field + b"\r\nConnection: close\r\n\r\n")
    assert parse(ok)[0] == 200
    body = assert_refused(http(hostile.port, b"GET /hello HTTP/1.1\r\n" + H + field + b"v\r\n\r\n"), 431)
    assert "LimitRequestFieldSize" in body


@pytest.mark.parametrize("piece", [1, 7, 100, 4096])
def test_header_limits_hold_however_the_bytes_arrive(hostile, piece):
    # h11 issue 182: h11 checks its size limit only while an event is
    # incomplete; the server must not depend on how the bytes are split.
    big = b"GET /hello HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 9000 + b"\r\n\r\n"
    if piece == 1:
        big = big[:8300]  # byte at a time: enough to pass the limit, keeps the test fast
    resp, _ = send_in_pieces(hostile.port, big, piece)
    assert_refused(resp, 431)


def test_too_many_header_fields_gives_431(hostile):
    def request(n_fields: int) -> bytes:
        extra = b"".join(b"X-F%d: y\r\n" % i for i in range(n_fields - 2))
        return b"GET /hello HTTP/1.1\r\n" + H + extra + b"Connection: close\r\n\r\n"
    assert parse(http(hostile.port, request(100)))[0] == 200  # Apache's default LimitRequestFields
    body = assert_refused(http(hostile.port, request(101)), 431)
    assert "LimitRequestFields" in body


def test_many_fields_in_small_pieces_give_431(hostile):
    head = b"GET /hello HTTP/1.1\r\n" + H + b"".join(b"X-F%d: y\r\n" % i for i in range(5000))
    resp, sent = send_in_pieces(hostile.port, head, 64)
    assert_refused(resp, 431)


def test_limit_request_fields_0_means_unlimited(server_factory, tmp_path):
    s = start(server_factory, tmp_path, "--limit-request-fields", "0")
    extra = b"".join(b"X-F%d: y\r\n" % i for i in range(150))
    resp = http(s.port, b"GET /hello HTTP/1.1\r\n" + H + extra + b"Connection: close\r\n\r\n")
    assert parse(resp)[0] == 200


def test_limit_request_fields_0_allows_a_large_head(server_factory, tmp_path):
    s = start(server_factory, tmp_path, "--limit-request-fields", "0")
    extra = b"".join(b"X-F%d: " % i + b"v" * 4000 + b"\r\n" for i in range(5))
    resp, _ = send_in_pieces(s.port, b"GET /hello HTTP/1.1\r\n" + H + extra + b"Connection: close\r\n\r\n",
                             4000, pause=0.05)
    assert parse(resp)[0] == 200


def test_a_bad_pipelined_request_is_refused_after_the_good_one_is_answered(hostile):
    good = b"GET /hello HTTP/1.1\r\n" + H + b"\r\n"
    for bad, status in ((b"GET /hello HTTP/1.1\r\n" + H + b"X: a\x01\r\n\r\n", 400),
                        (b"GET /hello HTTP/1.1\r\n" + H + b"X: " + b"v" * 9000 + b"\r\n\r\n", 431),
                        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414)):
        resp = http(hostile.port, good + bad)
        first, _, rest = resp.partition(b"hello")
        assert parse(first + b"hello")[::2] == (200, b"hello")
        assert_refused(rest, status)


def test_oversized_expect_100_continue_gets_413_without_100_continue(hostile):
    resp = http(hostile.port, b"POST /read?expect HTTP/1.1\r\n" + H
                + b"Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
    assert b"100 Continue" not in resp
    assert_refused(resp, 413)


def test_content_length_over_limit_request_body_gives_413_before_the_app_runs(hostile):
    resp = http(hostile.port, b"POST /read?cl-over HTTP/1.1\r\n" + H + b"Content-Length: 1001\r\n\r\n")
    assert_refused(resp, 413)
    ok = http(hostile.port, b"POST /read?cl-at HTTP/1.1\r\n" + H + b"Content-Length: 1000\r\nConnection: close\r\n\r\n"
              + b"b" * 1000)
    assert parse(ok)[:3:2] == (200, b"read 1000")
    wait_for(lambda: "HOSTILE-APP cl-at: complete 1000" in hostile.stderr, 10, what="the app's report")
    assert "HOSTILE-APP cl-over" not in hostile.stderr


def test_chunked_body_past_limit_is_an_error_in_the_app_and_a_413(hostile):
    chunks = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    resp = http(hostile.port, b"POST /read?chunked-over HTTP/1.1\r\n" + H
                + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert_refused(resp, 413)
    line = wait_for(lambda: [ln for ln in hostile.stderr.splitlines() if "HOSTILE-APP chunked-over" in ln],
                    10, what="the app's report")[0]
    assert "BodyTooLarge oserror=True" in line
    # The app read at most the limit before the error.
    assert int(line.rsplit("after=", 1)[1]) <= 1000
    assert_healthy(hostile)


def test_trailer_field_over_limit_is_refused(hostile):
    raw = (b"POST /read?trailer-big HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"0\r\nX-Trailer: " + b"t" * 9000 + b"\r\n\r\n")
    status = parse(http(hostile.port, raw))[0]
    assert status == 431  # the README: a field over LimitRequestFieldSize, or over LimitRequestFields, is a 431


def test_too_many_trailer_fields_are_refused(hostile):
    raw = (b"POST /read?trailer-many HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"0\r\n" + b"T: t\r\n" * 500 + b"\r\n")
    status = parse(http(hostile.port, raw))[0]
    assert status == 431  # the README: a field over LimitRequestFieldSize, or over LimitRequestFields, is a 431


@pytest.mark.parametrize("te", [b"gzip", b"chunked, gzip", b"gzip, chunked", b"identity"])
def test_unsupported_transfer_encoding_gives_501(hostile, te):
    resp = http(hostile.port, b"POST /read?te HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n")
    assert_refused(resp, 501)


@pytest.mark.parametrize("raw", [
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", id="tls-hello"),
    pytest.param(b"GET\r\n\r\n", id="no-target"),
    pytest.param(b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", id="extra-token"),
    pytest.param(b"GET / HTTQ/1.1\r\nHost: t\r\n\r\n", id="bad-protocol-name"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http11-without-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n", id="header-without-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n", id="space-in-name"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", id="content-length-abc"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", id="content-length-negative"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", id="two-lengths"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", id="bare-cr"),
])
def test_other_malformed_requests_give_400(hostile, raw):
    assert_refused(http(hostile.port, raw), 400)


def test_malformed_chunk_is_an_error_in_the_app_and_a_400(hostile):
    # The bad chunk comes after the app began reading (after 100 Continue):
    # the app sees an OSError. One that came with the head is refused first.
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=10) as c:
        c.sendall(b"POST /read?badchunk HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 100 ")
        c.sendall(b"3\r\nabc\r\nzz\r\nabc\r\n0\r\n\r\n")
        resp = b"".join(iter(lambda: c.recv(65536), b""))
    assert_refused(resp, 400)
    line = wait_for(lambda: [ln for ln in hostile.stderr.splitlines() if "HOSTILE-APP badchunk" in ln],
                    10, what="the app's report")[0]
    assert "oserror=True" in line


def test_malformed_chunk_with_the_head_is_refused_before_the_app_runs(hostile):
    resp = http(hostile.port, b"POST /read?badchunk-early HTTP/1.1\r\n" + H
                + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    assert_refused(resp, 400)
    assert_healthy(hostile)
    assert "HOSTILE-APP badchunk-early" not in hostile.stderr


def test_error_is_received_although_the_client_keeps_sending(hostile):
    # Lingering close: the client is still sending a body the server refused;
    # a plain close() would reset the connection and lose the 413.
    body = b"z" * 600_000
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=10) as c:
        c.sendall(b"POST /read?linger HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body))
        try:
            c.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = b""
        while True:
            d = c.recv(65536)  # a ConnectionResetError here is the bug this test catches
            if not d:
                break
            resp += d
    assert_refused(resp, 413)


def test_error_after_an_oversized_request_line_still_arrives(hostile):
    # The same for a head refused by the listener (414) while 1 MB more is on its way.
    result = {}

    def client():
        with socket.create_connection(("127.0.0.1", hostile.port), timeout=10) as c:
            try:
                c.sendall(b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            data = b""
            try:
                while d := c.recv(65536):
                    data += d
            except ConnectionResetError as exc:
                result["error"] = exc
            result["resp"] = data
    t = threading.Thread(target=client)
    t.start()
    t.join(20)
    assert "error" not in result, f"connection reset before the 414 was read: {result}"
    assert_refused(result["resp"], 414)


# -- what h11 lets through ------------------------------------------------------

@pytest.mark.parametrize("ctl", [0x00, 0x01, 0x08, 0x0B, 0x0C, 0x1B, 0x1F, 0x7F], ids=hex)
def test_control_character_in_header_value_gives_400(hostile, ctl):
    raw = b"GET /hello HTTP/1.1\r\n" + H + b"X-Ctl: a" + bytes([ctl]) + b"b\r\n\r\n"
    assert_refused(http(hostile.port, raw), 400)


def test_tab_in_header_value_is_accepted(hostile):
    raw = b"GET /headers HTTP/1.1\r\n" + H + b"X-Tab: a\tb\r\nConnection: close\r\n\r\n"
    status, _, body = parse(http(hostile.port, raw))
    assert status == 200 and json.loads(body)["HTTP_X_TAB"] == "a\tb"


@pytest.mark.parametrize("raw", [
    pytest.param(b"GET /hello HTTP/1.1\nHost: t\n\n", id="all-lf"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", id="one-lf"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: t\r\n\n", id="lf-blank-line"),
])
def test_bare_lf_line_endings_give_400(hostile, raw):
    assert_refused(http(hostile.port, raw), 400)


@pytest.mark.parametrize("fold", [b" ", b"\t"], ids=["space", "tab"])
def test_obs_fold_gives_400(hostile, fold):
    raw = b"GET /headers HTTP/1.1\r\n" + H + b"X-Folded: one\r\n" + fold + b"two\r\n\r\n"
    assert_refused(http(hostile.port, raw), 400)


def test_content_length_with_transfer_encoding_is_answered_then_closed(hostile):
    # A request smuggling attempt: whichever framing a proxy used, the server
    # answers the first request by Transfer-Encoding, hides Content-Length from
    # the app, and closes instead of reading what follows as a new request.
    first = (b"POST /headers HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"3\r\nabc\r\n0\r\n\r\n")
    smuggled = b"GET /hello HTTP/1.1\r\n" + H + b"\r\n"
    resp = http(hostile.port, first + smuggled)
    status, headers, body = parse(resp)
    assert status == 200
    assert headers["connection"].lower() == "close"
    seen = json.loads(body)
    assert "CONTENT_LENGTH" not in seen and "HTTP_CONTENT_LENGTH" not in seen
    assert resp.count(b"HTTP/1.1 ") == 1, "the smuggled request was answered"


def test_leading_empty_lines_before_the_request_line_are_ignored(hostile):
    resp = http(hostile.port, b"\r\n\r\nGET /hello HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert parse(resp)[::2] == (200, b"hello")


def test_endless_empty_lines_are_refused(hostile):
    resp, _ = send_in_pieces(hostile.port, b"\r\n" * 5000, 20)
    assert_refused(resp, 400)


def test_underscore_header_names_cannot_pose_as_dashed_ones(hostile):
    raw = (b"GET /headers HTTP/1.1\r\n" + H + b"X_Forwarded_For: 6.6.6.6\r\nX-Real-Ip: 1.2.3.4\r\n"
           b"X_Real_IP: 6.6.6.6\r\nConnection: close\r\n\r\n")
    status, _, body = parse(http(hostile.port, raw))
    seen = json.loads(body)
    assert status == 200
    assert seen["HTTP_X_REAL_IP"] == "1.2.3.4"
    assert "HTTP_X_FORWARDED_FOR" not in seen
    assert "6.6.6.6" not in body.decode()


# -- response splitting -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["cr", "lf", "crlf", "nul"])
def test_response_header_with_cr_lf_or_nul_gives_500_and_never_reaches_the_wire(hostile, kind):
    resp = http(hostile.port, b"GET /bad-header?" + kind.encode() + b" HTTP/1.1\r\n" + H + b"\r\n")
    status, headers, body = parse(resp)
    assert status == 500
    assert b"Injected" not in resp and b"never sent" not in resp
    assert headers["connection"].lower() == "close"
    assert_healthy(hostile)


# -- never down -----------------------------------------------------------------------

def test_a_crowd_of_hostile_clients_takes_nothing_down(hostile):
    attacks = [
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
        b"GET /hello HTTP/1.1\r\n" + H + b"X: " + b"v" * 20000 + b"\r\n\r\n",
        b"\x00" * 1000,
        b"GET /hello HTTP/1.1\r\n" + H + b"X: \x01\r\n\r\n",
        b"POST /read HTTP/1.1\r\n" + H + b"Content-Length: 99999999\r\n\r\n",
        b"POST /read HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        b"POST /read HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nab",  # then hang up
        b"GET /hello HTTP/1.1\r\n" + H + b"\r\n" * 1,  # keep-alive, then hang up
        b"GET /hel",  # half a head, then hang up
    ]
    log_start = len(hostile.stderr)
    idle_sockets = []
    try:
        # Slowloris: connections that send half a head and hold on.
        for _ in range(30):
            c = socket.create_connection(("127.0.0.1", hostile.port), timeout=5)
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: ")
            idle_sockets.append(c)
        errors = []

        def attacker(raw: bytes) -> None:
            try:
                for _ in range(5):
                    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as c:
                        c.sendall(raw)
                        c.shutdown(socket.SHUT_WR)
                        try:
                            while c.recv(65536):
                                pass
                        except OSError:
                            pass
            except OSError as exc:  # the server must keep accepting
                errors.append(exc)
        threads = [threading.Thread(target=attacker, args=(raw,)) for raw in attacks]
        for t in threads:
            t.start()
        # Meanwhile, ordinary clients are served.
        for _ in range(10):
            status, _, body = parse(http(hostile.port, b"GET /hello HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"))
            assert (status, body) == (200, b"hello")
        for t in threads:
            t.join(30)
        assert not errors, errors
    finally:
        for c in idle_sockets:
            c.close()
    assert_healthy(hostile)
    assert "Traceback" not in hostile.stderr[log_start:]


def test_endless_empty_lines_in_tiny_pieces_are_refused(hostile):
    # However they are split, the empty lines before one request are counted together.
    resp, _ = send_in_pieces(hostile.port, b"\r\n" * 50, 2, pause=0.01)
    assert_refused(resp, 400)
