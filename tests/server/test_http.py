"""HTTP/1.1 behaviour of the real server over real sockets."""

import http.client
import shutil
import socket
import statistics
import subprocess
import time

import pytest

from tests.support.server import http as raw_http
from tests.support.server import read_response
from tests.support.timing import timing


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def test_get_has_date_server_and_body(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/hello")
    r = conn.getresponse()
    assert r.status == 200
    assert r.read() == b"Hello, World!"
    assert r.getheader("Server").startswith("mpmserver/")
    assert r.getheader("Date").endswith("GMT")
    conn.close()


def test_keep_alive_reuses_the_connection(server):
    with connect(server) as s:
        leftover = b""
        for i in range(5):
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body, leftover = read_response(s, leftover)
            assert status == 200 and body == b"Hello, World!"
            assert headers.get("connection") != "close"


def test_pipelined_requests_are_answered_in_order(server):
    reqs = b"".join(b"GET /echo?%d HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n%d" % (i, i % 10) for i in range(20))
    with connect(server) as s:
        s.sendall(reqs)
        buf = b""
        for i in range(20):
            status, _, body, buf = read_response(s, buf)
            assert status == 200
            assert body == b"%d" % (i % 10)


def test_http10_closes_after_response(server):
    out = raw_http(server.port, b"GET /hello HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert out.endswith(b"Hello, World!")
    assert b"connection: close" in out.lower()


def test_http10_streamed_body_is_close_delimited(server):
    out = raw_http(server.port, b"GET /chunked HTTP/1.0\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head.lower()
    assert body == b"one,two,three"


def test_chunked_response_for_http11_without_content_length(server):
    with connect(server) as s:
        s.sendall(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body, _ = read_response(s)
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"one,two,three"


def test_head_sends_headers_without_body(server):
    with connect(server) as s:
        s.sendall(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0)  # both requests are sent; the HEAD answer must carry no body
        buf = b""
        while buf.count(b"Hello, World!") < 1:
            buf += s.recv(65536)
    first, second = buf.split(b"HTTP/1.1 200", 2)[1:]
    assert b"content-length: 13" in first.lower()
    assert first.endswith(b"\r\n\r\n"), "HEAD response had a body"
    assert second.endswith(b"Hello, World!")


def test_chunked_request_body(server):
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        status, _, got, _ = read_response(s)
    assert status == 200 and got == b"hello world"


def test_expect_100_continue_sent_when_app_reads(server):
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, _, _, buf = read_response(s)
        assert status == 100
        s.sendall(b"hello")
        status, _, body, _ = read_response(s, buf)
    assert status == 200 and body == b"hello"


def test_expect_100_continue_not_sent_when_app_does_not_read(server):
    with connect(server) as s:
        s.sendall(b"POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, headers, body, buf = read_response(s)
    assert status == 200 and body == b"ok"
    assert headers.get("connection") == "close"


def test_connection_close_from_client_is_honoured(server):
    out = raw_http(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1") == 1 and b"connection: close" in out.lower()


def test_connection_close_from_app_is_honoured(server):
    out = raw_http(server.port, b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n")  # returns only because the server closes
    assert out.endswith(b"close") and b"connection: close" in out.lower()


def test_garbage_gets_400_and_close(server):
    out = raw_http(server.port, b"\x16\x03\x01 this is not http\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    assert b"connection: close" in out.lower()


def test_leading_empty_lines_are_ignored(server):
    with connect(server) as s:
        s.sendall(b"\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body, _ = read_response(s)
    assert status == 200 and body == b"Hello, World!"


def test_tcp_nodelay_small_responses_are_not_delayed(server, record_property):
    # Nagle + delayed ACK would hold each small response written in pieces
    # (/chunked) for ~40 ms; with TCP_NODELAY a round trip on the loopback
    # takes well under a millisecond. The median of 20 round trips under
    # 20 ms still tells the two apart, and a loaded machine's spikes (a few
    # slow trips) do not move a median.
    trips = []
    with connect(server) as s:
        buf = b""
        for _ in range(20):
            start = time.monotonic()
            s.sendall(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n")
            status, _, _, buf = read_response(s, buf)
            trips.append(time.monotonic() - start)
            assert status == 200
    median = statistics.median(trips)
    timing(record_property, "TCP_NODELAY: median round trip of a small chunked response", median * 1000, "ms", 5)
    assert median < 0.020, f"median round trip {median * 1000:.1f} ms: Nagle's ~40 ms delay per response?"


def test_app_exception_gives_500_and_server_survives(server):
    out = raw_http(server.port, b"GET /error HTTP/1.1\r\nHost: t\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500")
    assert b"boom" not in out  # no traceback to the client
    assert "boom from the app" in server.stderr and "Traceback" in server.stderr
    out = raw_http(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")


def test_exception_after_headers_closes_connection(server):
    out = raw_http(server.port, b"GET /error-after-headers HTTP/1.1\r\nHost: t\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert not out.endswith(b"0\r\n\r\n"), "a broken body must not look complete"


def test_write_callable(server):
    with connect(server) as s:
        s.sendall(b"GET /write HTTP/1.1\r\nHost: t\r\n\r\n")
        _, _, body, _ = read_response(s)
    assert body == b"written,returned"


def test_exc_info_replaces_pending_headers(server):
    with connect(server) as s:
        s.sendall(b"GET /exc-info HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body, _ = read_response(s)
    assert status == 503 and body == b"nope"


def test_body_longer_than_content_length_is_truncated(server):
    with connect(server) as s:
        s.sendall(b"GET /too-long HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body, buf = read_response(s)
        assert body == b"01234"
        status, _, body, _ = read_response(s, buf)
        assert body == b"Hello, World!"


def test_body_shorter_than_content_length_closes(server):
    out = raw_http(server.port, b"GET /too-short HTTP/1.1\r\nHost: t\r\n\r\n")
    assert out.endswith(b"short")


@pytest.mark.parametrize("path", ["/split-header", "/hop"])
def test_bad_response_headers_give_500(server, path):
    out = raw_http(server.port, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    assert out.startswith(b"HTTP/1.1 500")
    assert b"Set-Cookie" not in out and b"never" not in out


def test_file_wrapper_sends_the_whole_file(server_factory):
    # Unvalidated app: wsgiref's validator hides the file_wrapper behind its own iterator.
    server = server_factory("--start-servers", "1", "--threads-per-child", "2", app="tests.apps.basic:raw_app").start()
    data = open("tests/apps/data.bin", "rb").read()
    with connect(server) as s:
        s.sendall(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\nGET /file?cl=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body, buf = read_response(s)
        assert status == 200 and int(headers["content-length"]) == len(data) and body == data
        status, headers, body, _ = read_response(s, buf)
        assert headers["content-length"] == "1000" and body == data[:1000]


def test_large_echo_post(server):
    payload = bytes(range(256)) * 4096  # 1 MiB
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    conn.request("POST", "/echo", body=payload)
    r = conn.getresponse()
    assert r.status == 200 and r.read() == payload


def test_unread_body_is_drained_and_connection_reused(server):
    with connect(server) as s:
        s.sendall(b"POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        _, _, body, buf = read_response(s)
        assert body == b"ok"
        _, _, body, _ = read_response(s, buf)
        assert body == b"Hello, World!"


@pytest.mark.external  # curl: CI installs it, so there a missing curl fails instead of skipping
@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
def test_curl_as_a_client(server):
    out = subprocess.run(["curl", "-s", "-d", "abc", f"{server.url}/echo", f"{server.url}/hello"],
                         capture_output=True, timeout=10)
    assert out.stdout == b"abcHello, World!"


def test_204_and_304_have_no_body_and_keep_alive(server_factory):
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", app="tests.apps.basic:no_body_app").start()
    with connect(s) as c:
        c.sendall(b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\nHost: t\r\n\r\nGET /200 HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = b""
        while b"should not be sent" not in buf:
            data = c.recv(65536)
            assert data
            buf += data
    first, second, third = buf.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"204") and first.endswith(b"\r\n\r\n") and b"transfer-encoding" not in first.lower()
    assert second.startswith(b"304") and second.endswith(b"\r\n\r\n")
    assert third.startswith(b"200")


def test_the_servers_header_names_are_title_case_and_the_apps_pass_as_written():
    # Apache's spelling for what the server writes (Date, Server,
    # Transfer-Encoding, Connection); the app's names exactly as it wrote them.
    from mpmserver.testing import serve

    def app(environ, start_response):
        start_response("200 OK", [("content-type", "text/plain"), ("X-MiXeD", "1")])
        return iter([b"a", b"b"])  # no Content-Length: chunked

    with serve(app) as srv, socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        head = b""
        while chunk := s.recv(4096):  # the whole response: the server closes after it
            head += chunk
    assert head.endswith(b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n")
    names = [line.split(b":")[0] for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]]
    assert sorted(names) == sorted([b"content-type", b"X-MiXeD", b"Date", b"Server", b"Transfer-Encoding",
                                    b"Connection"])
