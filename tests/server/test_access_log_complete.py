"""The access log misses nothing (issue 14, item 3): responses the server
writes itself, responses cut short by the client, %O and %X, and a JSON
LogFormat that stays JSON whatever the client sends. A real server."""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.server import http, read_response, wait_for

FORMAT = '{"r": "%r", "s": %>s, "b": "%b", "O": %O, "X": "%X", "ua": "%{User-Agent}i"}'
APP = "tests.apps.hostile_apps:app"


@pytest.fixture
def logged(server_factory, tmp_path):
    path = tmp_path / "access.log"
    s = server_factory("--start-servers", "1", "--threads-per-child", "4", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "8", "--timeout", "2",
                       "--limit-request-body", "1000", "--custom-log", str(path), FORMAT, app=APP,
                       access_log=True).start()

    def lines(n: int) -> list[dict]:
        """The log's entries once there are n (the readiness probe's first)."""
        def read():
            text = path.read_text() if path.exists() else ""
            entries = [json.loads(line) for line in text.splitlines()]
            return entries if len(entries) >= n else None
        try:
            return wait_for(read, 10, what=f"{n} access log lines")
        except AssertionError:
            raise AssertionError(f"{n} access log lines expected; the server said:\n{s.stderr[-3000:]}") from None
    def find(match) -> dict:
        """The first entry for which match(entry) is true, once it is there."""
        def read():
            text = path.read_text() if path.exists() else ""
            return next((e for e in map(json.loads, text.splitlines()) if match(e)), None)
        try:
            return wait_for(read, 10, what="the access log line")
        except AssertionError:
            raise AssertionError(f"not in {path.read_text() if path.exists() else 'no log'}\n"
                                 f"the server said:\n{s.stderr[-3000:]}") from None
    s.lines = lines
    s.find = find
    return s


H = b"Host: t\r\nConnection: close\r\n"


@pytest.mark.parametrize("raw,status", [
    (b"GET /\x01 HTTP/1.1\r\n" + H + b"\r\n", 400),                    # refused by the listener's head checks
    (b"GET /hello HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    (b"POST /read HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),                         # refused by the worker after h11
    (b"POST /read HTTP/1.1\r\n" + H + b"Content-Length: 1001\r\n\r\n", 413),
    (b"GET /x y HTTP/1.1\r\n" + H + b"\r\n", 400),                      # h11 refuses it
], ids=["control-char", "field-too-long", "line-too-long", "gzip", "http2", "body-too-large", "h11"])
def test_responses_the_server_writes_itself_are_logged(logged, raw, status):
    resp = http(logged.port, raw)
    assert resp.startswith(b"HTTP/1.1 %d " % status), resp[:100]
    entry = logged.find(lambda e: e["s"] == status)
    assert entry["O"] == len(resp), (entry, len(resp))
    assert entry["X"] == "-"
    assert entry["r"].split(" ")[0] in ("GET", "POST")


def test_a_slow_head_logs_408(logged):
    with socket.create_connection(("127.0.0.1", logged.port), timeout=10) as c:
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n")
        assert read_response(c)[0] == 408
    entry = logged.find(lambda e: e["s"] == 408)
    assert (entry["s"], entry["r"], entry["X"]) == (408, "GET /hello HTTP/1.1", "-")


def test_keep_alive_and_close_show_in_percent_x(logged):
    with socket.create_connection(("127.0.0.1", logged.port), timeout=10) as c:
        c.sendall(b"GET /hello?ka HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body, raw = read_response(c)
        c.sendall(b"GET /hello?close HTTP/1.1\r\n" + H + b"\r\n")
        read_response(c)
    first = logged.find(lambda e: e["r"] == "GET /hello?ka HTTP/1.1")
    second = logged.find(lambda e: e["r"] == "GET /hello?close HTTP/1.1")
    assert (first["X"], second["X"]) == ("+", "-")
    assert first["b"] == "5"
    assert first["O"] > 5


def test_a_response_cut_short_by_the_client_is_logged_as_aborted(logged):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", logged.port))
    c.sendall(b"GET /big HTTP/1.1\r\n" + H + b"\r\n")
    c.recv(1000)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # a reset: the server's next writes fail
    entry = logged.find(lambda e: e["r"].startswith("GET /big"))
    assert entry["X"] == "X" and entry["s"] == 200
    assert 0 < entry["O"] < 64 * 1024 * 1024


def test_non_ascii_keeps_a_json_log_valid(logged):
    resp = http(logged.port, b"GET /hello HTTP/1.1\r\n" + H + b"User-Agent: na\xefve \\x41 \"quoted\"\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200 ")
    entry = logged.find(lambda e: e["ua"].startswith("na"))  # json.loads is the test
    assert entry["ua"] == 'na\u00efve \\x41 "quoted"'
    # h11 refuses a non-ASCII request target: the 400 is logged, as JSON too.
    resp = http(logged.port, b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n")
    assert resp.startswith(b"HTTP/1.1 400 ")
    entry = logged.find(lambda e: e["s"] == 400)
    assert (entry["s"], entry["r"]) == (400, "GET /caf\u00c3\u00a9 HTTP/1.1")


def test_a_request_killed_by_request_timeout_is_logged_when_its_child_is_gone(server_factory, tmp_path):
    path = tmp_path / "access.log"
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "4",
                       "--request-timeout", "1", "--graceful-shutdown-timeout", "1",
                       "--custom-log", str(path), FORMAT, app="tests.apps.mpm_apps:app", access_log=True).start()
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as c:
        c.sendall(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n")
        entry = wait_for(lambda: next((e for e in map(json.loads, path.read_text().splitlines())
                                       if e["r"].startswith("GET /forever")), None), 20,
                         what="the killed request in the access log")
    assert (entry["s"], entry["X"]) == (500, "X")
