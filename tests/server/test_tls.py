"""HTTPS with the real server (issue 24): serve(app, tls=True) and the
fixture, what the app sees (mod_ssl's StdEnvVars), client certificates,
keep-alive, pipelining, bodies and large responses over TLS, the bad
handshakes (plain HTTP, garbage, h2-only ALPN, TLS 1.1), and handshakes
that stall in the listener without holding a thread.

Every client verifies the server's certificate against the test CA."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl
import threading
import urllib.request

import pytest
import requests

from mpmserver.testing import serve
from tests.support.fdlimit import need_descriptors
from tests.support.server import wait_for

pytest.importorskip("trustme", reason="serve(tls=True) needs trustme (the test extra)")

DATA = os.path.join(os.path.dirname(__file__), "..", "apps", "data.bin")
BIG = os.urandom(3 * 1024 * 1024 + 17)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/env":
        body = json.dumps({k: v for k, v in environ.items() if isinstance(v, str)}).encode()
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/big":
        body = BIG
    elif path == "/half":
        body = BIG[:600_000]
    elif path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(DATA, "rb"), 8192)
    else:
        body = b"Hello over TLS"
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def tls_server():
    with serve(app, tls=True, threads_per_child=4, log_level="info") as server:
        yield server


def env_of(server, **kwargs):
    r = requests.get(server.url + "/env", verify=server.ca_file, timeout=10, **kwargs)
    assert r.status_code == 200
    return r.json()


def test_requests_sees_https_and_the_ssl_variables(tls_server):
    assert tls_server.url.startswith("https://127.0.0.1:")
    env = env_of(tls_server)
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    assert env["SSL_PROTOCOL"] in ("TLSv1.2", "TLSv1.3")
    assert env["SSL_CIPHER"] and env["SSL_SESSION_RESUMED"] == "Initial"
    assert env["SSL_CLIENT_VERIFY"] == "NONE" and "SSL_CLIENT_CERT" not in env


def test_urllib_with_the_client_context_and_sni(tls_server):
    url = tls_server.url.replace("127.0.0.1", "localhost") + "/env"
    with urllib.request.urlopen(url, context=tls_server.client_context(), timeout=10) as r:
        env = json.loads(r.read())
    assert env["SSL_TLS_SNI"] == "localhost" and env["HTTPS"] == "on"


def test_httpx_verifies_the_certificate(tls_server):
    httpx = pytest.importorskip("httpx")
    with httpx.Client(verify=tls_server.client_context(), timeout=10) as client:
        r = client.get(tls_server.url + "/hello")
    assert r.status_code == 200 and r.text == "Hello over TLS" and r.http_version == "HTTP/1.1"


def test_a_client_that_does_not_trust_the_ca_is_refused_and_nothing_else_is_disturbed(tls_server):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_server.url + "/hello", timeout=10)  # the system CAs know nothing of it
    assert requests.get(tls_server.url + "/hello", verify=tls_server.ca_file, timeout=10).text == "Hello over TLS"


def test_a_resumed_session_says_so(tls_server):
    ctx = tls_server.client_context()

    def get_env(session=None):
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
                s.sendall(b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                body = read_all(s).partition(b"\r\n\r\n")[2]
                return json.loads(body), s.session

    first, session = get_env()
    assert first["SSL_SESSION_RESUMED"] == "Initial"
    again, _ = get_env(session)
    assert again["SSL_SESSION_RESUMED"] == "Resumed"


def test_keep_alive_and_pipelining_over_one_tls_connection(tls_server):
    conn = http.client.HTTPSConnection("127.0.0.1", tls_server.port, context=tls_server.client_context(),
                                       timeout=10)
    try:
        for _ in range(5):
            conn.request("GET", "/hello")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b"Hello over TLS"
        sock = conn.sock
        # Three requests in one write: the later ones wait decrypted in the
        # server's buffers, not in the kernel's.
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n" * 3)
        got = b""
        while got.count(b"Hello over TLS") < 3:
            data = sock.recv(65536)
            assert data, f"closed after {got!r}"
            got += data
        assert got.count(b"HTTP/1.1 200 OK") == 3
    finally:
        conn.close()


def test_request_bodies_small_and_large(tls_server):
    for size in (10, 50_000, 2_000_000):  # buffered by the listener, and read by the worker
        body = os.urandom(size)
        r = requests.post(tls_server.url + "/echo", data=body, verify=tls_server.ca_file, timeout=30)
        assert r.status_code == 200 and r.content == body


def test_a_large_response_to_a_slow_reader_arrives_whole(tls_server):
    """3 MB in one piece: the worker writes it in pieces (ServerTLSSocket's
    WRITE_MAX) and leaves the last of it to the loop's write completion;
    the pipelined request behind it is answered after."""
    ctx = tls_server.client_context()
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=20) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            got = b""
            want = len(BIG) + len(b"Hello over TLS")
            while len(got) < want + 200 or b"Hello over TLS" not in got[-100:]:
                data = s.recv(16384)
                assert data, "closed early"
                got += data
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and rest[:len(BIG)] == BIG


def test_write_completion_frees_the_worker_over_tls():
    """One worker: a client that does not read its 600 KB response yet does
    not hold it, as the loop writes the rest (write completion), so a second
    client is served meanwhile; the first then gets every byte."""
    with serve(app, tls=True, threads_per_child=1) as server:
        ctx = server.client_context()
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as slow:
                slow.sendall(b"GET /half HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                healthy(server)  # while the first response waits for its reader
                got = read_all(slow)
        assert got.partition(b"\r\n\r\n")[2] == BIG[:600_000]


def test_file_wrapper_falls_back_to_writes(tls_server):
    r = requests.get(tls_server.url + "/file", verify=tls_server.ca_file, timeout=20)
    with open(DATA, "rb") as f:
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(f.read()).digest()


# -- client certificates -------------------------------------------------------------

def test_a_required_client_certificate(tmp_path):
    with serve(app, tls=True, ssl_verify_client="require") as server:
        env = env_of(server, cert=server.client_cert_file("alice"))
        assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
        assert env["SSL_CLIENT_S_DN"].startswith("CN=alice")
        assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            env_of(server)  # no certificate: the handshake fails
        assert env_of(server, cert=server.client_cert_file("bob"))["SSL_CLIENT_S_DN"].startswith("CN=bob")


def test_an_optional_client_certificate(tmp_path):
    with serve(app, tls=True, ssl_verify_client="optional") as server:
        assert env_of(server)["SSL_CLIENT_VERIFY"] == "NONE"
        assert env_of(server, cert=server.client_cert_file())["SSL_CLIENT_VERIFY"] == "SUCCESS"


# -- bad handshakes -------------------------------------------------------------------

@pytest.fixture
def logged_server(tmp_path):
    log = tmp_path / "error.log"
    access = tmp_path / "access.log"
    with serve(app, tls=True, processes=1, error_log=str(log), log_level="info",
               custom_logs=[(str(access), '%h "%r" %>s %{SSL_PROTOCOL}x %{SSL_CIPHER}x')]) as server:
        server.error_log_path, server.access_log_path = log, access
        yield server


def read_all(sock):
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


def healthy(server):
    assert requests.get(server.url + "/hello", verify=server.ca_file, timeout=10).text == "Hello over TLS"


def test_plain_http_to_the_https_port_gets_apache_400(logged_server):
    with socket.create_connection(("127.0.0.1", logged_server.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"speaking plain HTTP to an SSL-enabled server port" in reply
    healthy(logged_server)
    wait_for(lambda: '"GET / HTTP/1.1" 400 - -' in logged_server.access_log_path.read_text(), 10,
             what="the 400 in the access log")


def test_garbage_is_closed_without_an_answer(logged_server):
    with socket.create_connection(("127.0.0.1", logged_server.port), timeout=10) as s:
        s.sendall(b"\x00\x01\x02 this is not TLS at all\r\n\r\n")
        assert read_all(s) == b""
    healthy(logged_server)
    wait_for(lambda: "not a TLS ClientHello" in logged_server.error_log_path.read_text(), 10,
             what="the refusal logged")


def test_a_client_asking_only_for_h2_gets_a_handshake_failure(logged_server):
    ctx = logged_server.client_context()
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", logged_server.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    wait_for(lambda: "ALPN offers only h2" in logged_server.error_log_path.read_text(), 10,
             what="the refusal logged")
    # h2 with http/1.1 as a fallback is served, over http/1.1
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", logged_server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.selected_alpn_protocol() == "http/1.1"
    healthy(logged_server)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_1_1_is_refused(logged_server):
    ctx = logged_server.client_context()
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", logged_server.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    wait_for(lambda: "TLS handshake failed" in logged_server.error_log_path.read_text(), 10,
             what="the refusal logged")
    healthy(logged_server)


def test_the_access_log_has_the_protocol_and_cipher(logged_server):
    healthy(logged_server)
    env = env_of(logged_server)
    line = f'"GET /env HTTP/1.1" 200 {env["SSL_PROTOCOL"]} {env["SSL_CIPHER"]}'
    wait_for(lambda: line in logged_server.access_log_path.read_text(), 10, what="the access line")


# -- handshakes that stall cost a descriptor, not a thread -------------------------------

def test_a_stalled_handshake_is_closed_at_the_handshake_deadline():
    with serve(app, tls=True, request_read_timeout="handshake=1 header=20-40,MinRate=500") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # six bytes of a 512-byte ClientHello
            assert read_all(s) == b""  # closed by the server, not by our timeout
        healthy(server)


def half_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[:len(hello) // 2]


def test_500_stalled_handshakes_do_not_stop_a_new_client(tmp_path):
    """500 clients that connect and send nothing, 500 that send half a
    ClientHello and stall: two worker threads, and a probe on a new
    connection is still served (each stalled one holds a descriptor)."""
    need_descriptors(2 * 1000 + 200)
    with serve(app, tls=True, processes=1, threads_per_child=2,
               max_open_connections_per_child=2000) as server:
        stalled = []
        piece = half_hello()
        try:
            for i in range(1000):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                if i % 2:
                    s.sendall(piece)
                stalled.append(s)
            for _ in range(3):
                healthy(server)
            # a stalled one is still open (not dropped to make room)
            stalled[-1].setblocking(False)
            with pytest.raises(BlockingIOError):
                stalled[-1].recv(1)
        finally:
            for s in stalled:
                s.close()


# -- the pytest fixture ----------------------------------------------------------------

def test_the_pytest_fixture_serves_https(mpm_server_tls):
    server = mpm_server_tls(app)
    healthy(server)


def test_processes_mode_serves_https_beside_nothing_else():
    with serve(app, tls=True, processes=2, threads_per_child=2) as server:
        seen = set()
        for _ in range(4):
            env = env_of(server)
            seen.add(env["HTTPS"])
        assert seen == {"on"}


def test_concurrent_clients(tls_server):
    errors = []

    def client():
        try:
            with requests.Session() as s:
                for _ in range(20):
                    assert s.get(tls_server.url + "/hello", verify=tls_server.ca_file, timeout=10).status_code == 200
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def tls_exchange(server, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s0:
        with server.client_context().wrap_socket(s0, server_hostname="127.0.0.1") as s:
            s.sendall(raw)
            return read_all(s)


def test_the_servers_own_error_responses_go_over_tls(tls_server):
    """A bad head is answered by the listener (refuse) over the TLS session;
    HTTP/1.0 is closed by the worker after its response."""
    assert tls_exchange(tls_server, b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n").startswith(
        b"HTTP/1.1 400 Bad Request")
    reply = tls_exchange(tls_server, b"GET /hello HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"Hello over TLS")


def test_a_slow_head_over_tls_gets_408():
    with serve(app, tls=True, request_read_timeout="header=1 body=20") as server:
        assert tls_exchange(server, b"GET /hello HTTP/1.1\r\nHost: t\r\n").startswith(b"HTTP/1.1 408")
        healthy(server)


def metric_lines(server) -> dict[str, float]:
    text = requests.get(server.url + "/metrics", verify=server.ca_file, timeout=10).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith("mpmserver_tls")}


def test_metrics_count_tls_connections_handshakes_and_failures():
    with serve(app, tls=True, metrics_path="/metrics", status_path="/server-status") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            read_all(s)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"\x00garbage")
            read_all(s)
        ctx = server.client_context()
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with pytest.raises(ssl.SSLError):
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.client_context(),
                                               timeout=10)
            conn.request("GET", "/hello")
            conn.getresponse().read()  # one TLS connection open, kept alive
            wait_for(lambda: metric_lines(server).get('mpmserver_tls_handshake_failures_total{reason="alpn"}') == 1,
                     10, what="the failures counted")
            m = metric_lines(server)
            assert m['mpmserver_tls_handshake_failures_total{reason="plain_http"}'] == 1
            assert m['mpmserver_tls_handshake_failures_total{reason="not_tls"}'] == 1
            assert m["mpmserver_tls_handshakes"] == 1  # the stalled one
            assert m["mpmserver_tls_connections"] == 2  # the kept-alive one and this scrape's
            page = requests.get(server.url + "/server-status", verify=server.ca_file, timeout=10).text
            assert "TLS: 2 connections, 1 handshakes in progress; failed handshakes: plain_http 1, not_tls 1, " \
                   "alpn 1" in page
            conn.close()
        finally:
            stalled.close()
