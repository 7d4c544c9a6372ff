"""Behind a reverse proxy, over real sockets (issue 12): unix sockets, RemoteIP,
the PROXY protocol, server-status through a proxy, MaxRequestsPerChild, and a
real HAProxy in front. Everything listens on 127.0.0.1 (and 127.0.0.2 plays
an outside client: it is loopback too, but not a trusted proxy)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import time

import pytest

from mpmserver.modules import proxy_protocol as pp
from mpmserver.testing import serve
from tests.support import haproxy
from tests.support.client import get_json
from tests.support.server import free_port, read_response, wait_for

APP = "tests.apps.remoteip_app:app"
OUTSIDER = "127.0.0.2"  # loopback, but never in RemoteIPTrustedProxy here


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (what `curl --unix-socket` does)."""

    def __init__(self, path: str, timeout: float = 10.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def raw_request(raw: bytes, port: int, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(raw)
        status, headers, body, _ = read_response(s)
        return status, headers, body


def closed_without_answer(raw: bytes, port: int, source: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(raw)
            return s.recv(100) == b""
        except ConnectionResetError:
            return True


GET = b"GET /who HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"


# -- unix sockets ------------------------------------------------------------------------------

def test_unix_socket_serves_http_clients_and_is_removed_at_exit(server_factory, tmp_path):
    path = str(tmp_path / "app.sock")
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", "--listen", f"unix:{path}",
                       "--unix-socket-mode", "0660", "--status-path", "/server-status",
                       "--remote-ip-header", "X-Forwarded-For", "--remote-ip-trusted-proxy", "unix",
                       "--custom-log", "-", "%a %{c}a %r %>s", app=APP, access_log=True).start()
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    conn = UnixHTTPConnection(path)
    seen = get_json(conn, "/a")
    assert seen["REMOTE_ADDR"] == "unix:" and seen["HTTP_HOST"] == "localhost"
    # A keep-alive request on the same connection, with a proxy's header.
    seen = get_json(conn, "/b", {"X-Forwarded-For": "198.51.100.5", "X-Forwarded-Proto": "https"})
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"], seen["HTTPS"]) == ("198.51.100.5", "https", "on")
    conn.close()
    # server-status over the socket: an outsider named by the (trusted) header is refused.
    conn = UnixHTTPConnection(path)
    conn.request("GET", "/server-status?auto", headers={"X-Forwarded-For": "198.51.100.5"})
    assert conn.getresponse().status == 403
    conn.close()
    # The access log: %a is the client, %{c}a the peer.
    wait_for(lambda: "198.51.100.5 unix: GET /b HTTP/1.1 200" in s.stdout, 10, 0.05, "the access log line")
    assert "unix: unix: GET /a HTTP/1.1 200" in s.stdout
    s.stop()
    assert not os.path.exists(path), "the master removes its socket file when it exits"


@pytest.mark.external  # curl: CI installs it, so there a missing curl fails instead of skipping
@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
def test_curl_over_the_unix_socket(server_factory, tmp_path):
    path = str(tmp_path / "app.sock")
    server_factory("--start-servers", "1", "--threads-per-child", "2", "--listen", f"unix:{path}", app=APP).start()
    out = subprocess.run(["curl", "-s", "--max-time", "10", "--unix-socket", path, "http://x/c"],
                         capture_output=True, timeout=20, check=True).stdout
    assert json.loads(out)["REMOTE_ADDR"] == "unix:"


def test_bench_over_a_unix_socket(server_factory, tmp_path):
    from mpmserver.bench.cli import run

    path = str(tmp_path / "bench.sock")
    server_factory("--start-servers", "1", "--threads-per-child", "2", "--listen", f"unix:{path}", app=APP).start()
    rep = run(["http://localhost/", "--unix-socket", path, "-c", "2", "-n", "40", "--no-progress"])
    assert rep["responses"] == 40 and rep["errors_total"] == 0


def test_stale_socket_is_replaced_but_a_live_one_or_a_file_is_not(server_factory, tmp_path):
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays; nobody listens: what a crash leaves
    s = server_factory("--start-servers", "1", "--threads-per-child", "1", "--listen", f"unix:{path}",
                       app=APP).start()
    assert get_json(UnixHTTPConnection(path))["REMOTE_ADDR"] == "unix:"
    # A second server on the same path: refused, the first keeps its socket.
    second = server_factory("--start-servers", "1", "--listen", f"unix:{path}", app=APP).start(wait=False)
    assert second.wait_exit(15) != 0
    assert "another server is listening on it" in second.stderr
    assert get_json(UnixHTTPConnection(path))["REMOTE_ADDR"] == "unix:"
    s.stop()
    regular = tmp_path / "regular"
    regular.write_text("data")
    third = server_factory("--listen", f"unix:{regular}", app=APP).start(wait=False)
    assert third.wait_exit(15) != 0
    assert "is not a socket; not removing it" in third.stderr
    assert regular.read_text() == "data"


# -- X-Forwarded-For and the status page -------------------------------------------------------

@pytest.fixture
def xff_server(server_factory):
    return server_factory("--start-servers", "1", "--threads-per-child", "2", "--status-path", "/server-status",
                          "--remote-ip-header", "X-Forwarded-For", "--remote-ip-trusted-proxy", "127.0.0.1",
                          app=APP).start()


def test_spoofed_x_forwarded_for_from_an_untrusted_peer_is_ignored(xff_server):
    raw = (b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.9.9.9, 127.0.0.1\r\n"
           b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
    status, _, body = raw_request(raw, xff_server.port, source=OUTSIDER)
    seen = json.loads(body)
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"], seen["HTTPS"]) == (OUTSIDER, "http", None)
    # From the trusted proxy, the same header names the client: the rightmost untrusted.
    status, _, body = raw_request(raw.replace(b"10.9.9.9, 127.0.0.1", b"10.9.9.9, 198.51.100.3"), xff_server.port)
    assert json.loads(body)["REMOTE_ADDR"] == "198.51.100.3"


def test_status_page_through_a_local_proxy_is_judged_on_the_real_client(xff_server):
    def status_of(xff: str, source: str = "127.0.0.1") -> int:
        raw = (f"GET /server-status?auto HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {xff}\r\n"
               f"Connection: close\r\n\r\n").encode()
        return raw_request(raw, xff_server.port, source)[0]

    assert status_of("198.51.100.1") == 403  # an outsider, through the proxy on 127.0.0.1
    assert status_of("127.0.0.1, 198.51.100.1") == 403  # with a spoofed loopback on the left
    assert status_of("127.0.0.1") == 200  # a local client through the proxy
    assert status_of("127.0.0.1", source=OUTSIDER) == 403  # header from an untrusted peer: ignored


# -- the PROXY protocol --------------------------------------------------------------------------

def proxy_server(server_factory, *extra: str):
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", "--remote-ip-proxy-protocol", "On",
                       "--remote-ip-trusted-proxy", "127.0.0.1", "--log-level", "info", *extra, app=APP,
                       access_log="--custom-log" in extra)
    s.start(wait=False)
    hello = pp.v2_header(local=True) + b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

    def ready():
        if s.proc.poll() is not None:
            raise AssertionError(f"server exited:\n{s.stderr}")
        try:
            return raw_request(hello, s.port)[0] == 200
        except OSError:
            return False
    wait_for(ready, 15, 0.05, "the PROXY-protocol server to answer")
    return s


def test_proxy_protocol_v1_and_v2_sent_by_hand(server_factory):
    s = proxy_server(server_factory)
    seen = json.loads(raw_request(pp.v1_line("198.51.100.7", "203.0.113.1", 51000, 80) + GET, s.port)[2])
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("198.51.100.7", "51000")
    seen = json.loads(raw_request(pp.v2_header("2001:db8::7", "2001:db8::1", 4711, 443) + GET, s.port)[2])
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("2001:db8::7", "4711")
    # LOCAL (a health check) keeps the peer.
    seen = json.loads(raw_request(pp.v2_header(local=True) + GET, s.port)[2])
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    # Split across writes, byte by byte.
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        for b in pp.v1_line("198.51.100.8", "203.0.113.1", 1, 80):
            c.sendall(bytes([b]))
            time.sleep(0.001)
        c.sendall(GET)
        assert json.loads(read_response(c)[2])["REMOTE_ADDR"] == "198.51.100.8"


def test_proxy_protocol_refusals(server_factory):
    s = proxy_server(server_factory, "--timeout", "1")
    # No header: closed, never answered (it would be a spoof of the proxy).
    assert closed_without_answer(GET, s.port)
    # Garbage, an oversized v2 header, a v1 line with no end.
    assert closed_without_answer(b"PROXY TCP4 1.2.3.4 nonsense\r\n" + GET, s.port)
    assert closed_without_answer(pp.V2_SIGNATURE + b"\x21\x11\xff\xff", s.port)
    assert closed_without_answer(b"PROXY TCP4 " + b"9" * 200, s.port)
    # A peer that is not a trusted proxy cannot send one at all.
    assert closed_without_answer(pp.v1_line("198.51.100.7", "203.0.113.1", 1, 80) + GET, s.port, source=OUTSIDER)
    # Half a header, then silence: closed after Timeout.
    t0 = time.monotonic()
    assert closed_without_answer(pp.V2_SIGNATURE[:8], s.port)
    assert time.monotonic() - t0 < 5
    assert "not a RemoteIPTrustedProxy" in s.stderr
    assert "did not start with a PROXY protocol header" in s.stderr


# -- MaxRequestsPerChild -------------------------------------------------------------------------

def test_max_requests_per_child_recycles_over_one_keep_alive_connection(server_factory):
    s = server_factory("--start-servers", "2", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "8", "--max-requests-per-child", "5",
                       "--max-keep-alive-requests", "0", "--log-level", "info", app=APP).start()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)  # reopens after Connection: close
    pids, closes, failures = [], 0, []
    for i in range(40):
        try:
            conn.request("GET", f"/{i}")
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                failures.append((i, r.status))
                continue
            pids.append(json.loads(body)["pid"])
            closes += r.getheader("Connection", "") == "close"
        except (OSError, http.client.HTTPException) as exc:
            failures.append((i, repr(exc)))
            conn.close()
    conn.close()
    assert failures == []
    assert len(pids) == 40
    # One connection, yet children recycle: each served at most 5 requests.
    assert len(set(pids)) >= 40 // 5 - 1
    assert max(pids.count(p) for p in set(pids)) <= 5
    assert closes >= 6
    assert "reached MaxRequestsPerChild (5), recycling" in s.stderr
    assert "exit signal" not in s.stderr and "crashed" not in s.stderr


def test_max_requests_per_child_in_the_test_server_too():
    from tests.apps.remoteip_app import app

    with serve(app, max_requests_per_child=3, threads_per_child=2) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        closes = []
        for i in range(9):
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            closes.append(r.getheader("Connection") == "close")
        conn.close()
    assert closes == [False, False, True] * 3


# -- a real HAProxy ------------------------------------------------------------------------------



@pytest.mark.external
@pytest.mark.skipif(not haproxy.HAPROXY, reason=haproxy.MISSING)
def test_behind_haproxy_forwardfor_and_send_proxy_v2(server_factory, tmp_path):
    xff = server_factory("--start-servers", "1", "--threads-per-child", "2", "--status-path", "/server-status",
                         "--remote-ip-header", "X-Forwarded-For", "--remote-ip-trusted-proxy", "127.0.0.1",
                         app=APP).start()
    pxy = proxy_server(server_factory, "--status-path", "/server-status", "--custom-log", "-", "%a %{c}a %r %>s")
    fe_xff, fe_pxy = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
global
    maxconn 100

defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    option http-keep-alive

frontend fe_xff
    bind 127.0.0.1:{fe_xff}
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    default_backend be_xff

backend be_xff
    http-reuse always
    server s1 127.0.0.1:{xff.port}

frontend fe_pxy
    bind 127.0.0.1:{fe_pxy}
    default_backend be_pxy

backend be_pxy
    option httpchk GET /health
    server s1 127.0.0.1:{pxy.port} send-proxy-v2 check check-send-proxy inter 300ms
""")
    proc = haproxy.start(str(cfg))
    try:
        def answered(port: int, source: str):
            try:
                return raw_request(b"GET /who HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n", port, source)
            except OSError:
                return None
        got = wait_for(lambda: (r := answered(fe_xff, OUTSIDER)) and r[0] == 200 and r, 15, 0.05,
                       "HAProxy (option forwardfor) to answer")
        seen = json.loads(got[2])
        assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"], seen["HTTPS"]) == (OUTSIDER, "https", "on")
        assert seen["HTTP_X_FORWARDED_FOR"] == OUTSIDER
        # A client's own X-Forwarded-For is kept on the left, and not believed.
        status, _, body = raw_request(b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 127.0.0.1\r\n"
                                      b"Connection: close\r\n\r\n", fe_xff, OUTSIDER)
        assert json.loads(body)["REMOTE_ADDR"] == OUTSIDER
        # server-status through HAProxy: the outsider gets 403.
        assert raw_request(b"GET /server-status?auto HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           fe_xff, OUTSIDER)[0] == 403
        assert raw_request(b"GET /server-status?auto HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           fe_xff, "127.0.0.1")[0] == 200

        got = wait_for(lambda: (r := answered(fe_pxy, OUTSIDER)) and r[0] == 200 and r, 15, 0.05,
                       "HAProxy (send-proxy-v2) to answer")
        seen = json.loads(got[2])
        assert seen["REMOTE_ADDR"] == OUTSIDER
        assert seen["HTTP_X_FORWARDED_FOR"] is None
        assert raw_request(b"GET /server-status?auto HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                           fe_pxy, OUTSIDER)[0] == 403
        # Health checks came with the PROXY header too (LOCAL: the peer stays the client).
        wait_for(lambda: "127.0.0.1 127.0.0.1 GET /health HTTP/1.0" in pxy.stdout, 10, 0.05,
                 "a HAProxy health check in the access log")
        # The access log line is written just after the response goes out.
        wait_for(lambda: f"{OUTSIDER} 127.0.0.1 GET /who HTTP/1.1 200" in pxy.stdout, 10, 0.05,
                 "the proxied request in the access log")
    finally:
        haproxy.stop(proc)
