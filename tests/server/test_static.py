"""Static files from an Alias, answered by the listener (issue 27): a real
server (mpmserver.testing.serve), real HTTP over sockets.

Each request for a file is checked the way a browser or curl would see it;
the app records every path it is asked for, so a file request that reached
a worker (or a refused one) would show up there.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import http.client
import os
import socket
import threading
import time

import pytest

from mpmserver.testing import serve
from tests.support.client import parse
from tests.support.server import wait_for

CSS = b"body { color: #333; }\n" * 200  # 4.4 KB
SECRET = b"SECRET_KEY = 'do not serve me'\n"


class App:
    """A WSGI app that records the paths it served."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ, start_response):
        self.paths.append(environ["PATH_INFO"])
        body = b"app " + environ["PATH_INFO"].encode("latin-1")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def project(tmp_path):
    """A project directory: settings.py beside static/ (what a traversal is after)."""
    (tmp_path / "settings.py").write_bytes(SECRET)
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "site.css").write_bytes(CSS)
    (static / "css" / "site.0123456789ab.css").write_bytes(CSS)
    (static / "js").mkdir()
    (static / "js" / "app.js").write_bytes(b"console.log('plain');\n")
    (static / "js" / "app.js.gz").write_bytes(gzip.compress(b"console.log('gzip');\n"))
    (static / "js" / "app.js.br").write_bytes(b"brotli bytes")
    (static / ".env").write_bytes(SECRET)
    os.symlink("/etc/passwd", static / "passwd")
    os.symlink(tmp_path / "settings.py", static / "settings.py")
    return tmp_path


@pytest.fixture
def app():
    return App()


@pytest.fixture
def server(project, app):
    with serve(app, static={"/static/": project / "static"}, threads_per_child=2) as s:
        yield s


def request(server, method: str, path: str, headers: dict | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if conn is None:
            c.close()


def raw(server, target: bytes) -> tuple[int, dict[str, str], bytes]:
    """A GET of ``target`` exactly as given (http.client would refuse some)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    return parse(data)


# -- the answers -----------------------------------------------------------------------

def test_a_file_is_200_with_its_type_validators_and_length(server, project, app):
    status, headers, body = request(server, "GET", "/static/css/site.css")
    assert status == 200 and body == CSS
    mtime = os.stat(project / "static/css/site.css").st_mtime
    assert headers["content-type"] == "text/css; charset=utf-8"
    assert headers["content-length"] == str(len(CSS)) and headers["accept-ranges"] == "bytes"
    assert headers["last-modified"] == email.utils.formatdate(mtime, usegmt=True)
    assert headers["etag"].startswith('"') and "cache-control" not in headers
    assert app.paths == []  # no worker ran the app for it


def test_keep_alive_carries_files_and_app_requests_alike(server, app):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(3):
        assert request(server, "GET", "/static/css/site.css", conn=c)[2] == CSS
        assert request(server, "GET", "/hello", conn=c)[2] == b"app /hello"
    c.close()
    assert app.paths == ["/hello"] * 3


def test_pipelined_requests_are_answered_in_order_whoever_answers_them(server, app):
    reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p for p in
                    (b"/static/js/app.js", b"/one", b"/static/js/app.js", b"/static/none", b"/two"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(reqs + b"GET /static/js/app.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    bodies = []
    while data:
        status, headers, body = parse(data)
        bodies.append((status, body))
        data = data[data.index(b"\r\n\r\n") + 4 + int(headers["content-length"]):]
    plain = b"console.log('plain');\n"
    assert [b for _, b in bodies[:3]] == [plain, b"app /one", plain]
    assert bodies[3][0] == 404 and bodies[4] == (200, b"app /two") and bodies[5] == (200, plain)
    assert app.paths == ["/one", "/two"]


def test_conditional_requests_are_304(server):
    _, headers, _ = request(server, "GET", "/static/css/site.css")
    status, h304, body = request(server, "GET", "/static/css/site.css", {"If-None-Match": headers["etag"]})
    assert (status, body, h304["etag"]) == (304, b"", headers["etag"])
    status, _, body = request(server, "GET", "/static/css/site.css",
                              {"If-Modified-Since": headers["last-modified"]})
    assert (status, body) == (304, b"")
    assert request(server, "GET", "/static/css/site.css", {"If-None-Match": '"other"'})[0] == 200


def test_a_single_range_is_206_and_one_past_the_end_416(server):
    status, headers, body = request(server, "GET", "/static/css/site.css", {"Range": "bytes=10-19"})
    assert (status, body, headers["content-range"]) == (206, CSS[10:20], f"bytes 10-19/{len(CSS)}")
    status, headers, body = request(server, "GET", "/static/css/site.css", {"Range": "bytes=-5"})
    assert (status, body) == (206, CSS[-5:])
    status, headers, body = request(server, "GET", "/static/css/site.css", {"Range": f"bytes={len(CSS)}-"})
    assert (status, body, headers["content-range"]) == (416, b"", f"bytes */{len(CSS)}")


def test_head_has_the_headers_of_get_and_no_body(server):
    status, headers, body = request(server, "HEAD", "/static/css/site.css")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(CSS)))
    # and the connection goes on: the next answer is not mixed with a body
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert request(server, "HEAD", "/static/css/site.css", conn=c)[2] == b""
    assert request(server, "GET", "/static/css/site.css", conn=c)[2] == CSS
    c.close()


def test_the_precompressed_sibling_follows_accept_encoding(server):
    status, headers, body = request(server, "GET", "/static/js/app.js", {"Accept-Encoding": "gzip, br"})
    assert (status, body, headers["content-encoding"]) == (200, b"brotli bytes", "br")
    assert headers["vary"] == "Accept-Encoding" and headers["content-type"] == "text/javascript; charset=utf-8"
    status, headers, body = request(server, "GET", "/static/js/app.js", {"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == b"console.log('gzip');\n"
    status, headers, body = request(server, "GET", "/static/js/app.js")
    assert body == b"console.log('plain');\n" and "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"


def test_expires_and_immutable_hashed_names(project, app):
    with serve(app, static={"/static/": project / "static"}, expires_active=True,
               expires_default="access plus 1 day", static_immutable_hashed=True) as s:
        _, headers, _ = request(s, "GET", "/static/css/site.css")
        assert headers["cache-control"] == "max-age=86400"
        expires = email.utils.parsedate_to_datetime(headers["expires"]).timestamp()
        assert abs(expires - (time.time() + 86400)) < 120
        _, headers, _ = request(s, "GET", "/static/css/site.0123456789ab.css")
        assert headers["cache-control"] == "public, max-age=31536000, immutable"


def test_a_file_replaced_on_disk_is_served_new(server, project):
    path = project / "static" / "css" / "site.css"
    assert request(server, "GET", "/static/css/site.css")[2] == CSS
    new = path.with_name("site.css.new")
    new.write_bytes(b"body { color: red }\n")
    os.replace(new, path)  # as a deploy does: a new file under the old name
    assert request(server, "GET", "/static/css/site.css")[2] == b"body { color: red }\n"
    path.write_bytes(b"rewritten in place\n")
    assert request(server, "GET", "/static/css/site.css")[2] == b"rewritten in place\n"
    path.unlink()
    assert request(server, "GET", "/static/css/site.css")[0] == 404


# -- what is refused -----------------------------------------------------------------------

@pytest.mark.parametrize("target, status", [
    (b"/static/../settings.py", 400),
    (b"/static/%2e%2e/settings.py", 400),
    (b"/static/css/%2E%2E/%2e%2e/settings.py", 400),
    (b"/static/..%2fsettings.py", 404),
    (b"/static/css%2fsite.css", 404),
    (b"/static/css/site.css%00.txt", 400),
    (b"/static/passwd", 403),
    (b"/static/settings.py", 403),
    (b"/static/.env", 404),
    (b"/static/css/", 404),
    (b"/static/", 404),
])
def test_traversal_and_what_was_never_meant_to_be_served_are_refused(server, app, target, status):
    got, _, body = raw(server, target)
    assert got == status, body
    assert b"SECRET_KEY" not in body and b"root:" not in body
    assert app.paths == []  # nor did the app get the request


def test_a_raw_nul_in_the_target_is_refused(server, app):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(b"GET /static/css/site.css\0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = c.recv(65536)
    assert parse(data)[0] == 400 and CSS not in data
    assert app.paths == []


def test_followsymlinks_lets_a_symlink_lead_out(project, app):
    with serve(app, static={"/static/": project / "static"}, follow_symlinks=True) as s:
        assert request(s, "GET", "/static/settings.py")[2] == SECRET


def test_other_methods_and_other_paths_go_to_the_app(server, app):
    assert request(server, "POST", "/static/css/site.css")[2] == b"app /static/css/site.css"
    assert request(server, "GET", "/staticfile")[2] == b"app /staticfile"
    assert app.paths == ["/static/css/site.css", "/staticfile"]


# -- logged and counted ----------------------------------------------------------------------

def test_file_responses_are_access_logged(project, app, tmp_path):
    log = tmp_path / "access.log"
    fmt = '%h "%r" %>s %b %O %X "%{User-Agent}i"'
    # processes=1: a real master and child (the in-process server keeps no access log).
    with serve(app, static={"/static/": project / "static"}, custom_logs=[(str(log), fmt)], processes=1,
               remote_ip_header="X-Forwarded-For", remote_ip_trusted_proxy=["127.0.0.1"]) as s:
        request(s, "GET", "/static/css/site.css", {"User-Agent": "probe/1", "X-Forwarded-For": "203.0.113.7"})
        request(s, "GET", "/static/css/site.css", {"Range": "bytes=0-9"})
        request(s, "GET", "/static/none.css")
        raw(s, b"/static/../settings.py")

        def lines():
            text = log.read_text() if log.exists() else ""
            return text.splitlines() if text.count("\n") >= 4 else None
        got = wait_for(lines, 10, what="four access log lines")
    # the client a trusted proxy names, as for an app request (RemoteIPHeader)
    assert got[0].startswith(f'203.0.113.7 "GET /static/css/site.css HTTP/1.1" 200 {len(CSS)} ')
    assert got[0].endswith('"probe/1"')
    assert int(got[0].split()[6]) > len(CSS) and got[0].split()[7] == "+"  # %O: the head too; kept alive
    assert got[1].split()[4:6] == ["206", "10"]
    assert got[2].split()[4] == "404"
    assert got[3].split()[4] == "400"


def test_a_static_only_load_counts_in_the_scoreboard_and_busies_no_worker(project, app):
    with serve(app, static={"/static/": project / "static"}, threads_per_child=2) as s:
        before = s.scoreboard()
        assert before.static_requests == 0
        busy = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                busy.append(s.scoreboard().busy_workers)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            def client():
                c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
                for _ in range(100):
                    assert request(s, "GET", "/static/css/site.css", conn=c)[0] == 200
                c.close()
            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        finally:
            stop.set()
            watcher.join()
        snap = wait_for(lambda: (sn := s.scoreboard()).static_requests >= 400 and sn, 10,
                        what="400 static responses counted")
        assert snap.static_requests == 400 and snap.static_bytes > 400 * len(CSS)
        assert sum(w.access_count for p in snap.processes for w in p.workers) == 0
        assert snap.total_accesses == 400
        assert busy and max(busy) == 0, "a worker was busy during a static-only load"
        assert app.paths == []


def test_slow_downloads_of_a_large_file_leave_the_app_answering(project, app):
    big = project / "static" / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 8)  # 8 MiB
    # Two workers; twenty clients that read nothing of an 8 MiB file: were
    # a worker sending it, each would hold one until Timeout.
    with serve(app, static={"/static/": project / "static"}, threads_per_child=2) as s:
        slow = []
        try:
            for _ in range(20):
                c = socket.socket()
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                c.settimeout(10)
                c.connect(("127.0.0.1", s.port))
                c.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                slow.append(c)
            wait_for(lambda: s.scoreboard().conns_writing >= 20, 10, what="20 downloads in write completion")
            for i in range(10):  # probes on new connections: answered
                status, _, body = request(s, "GET", f"/probe{i}")
                assert (status, body) == (200, b"app /probe%d" % i)
            # and each slow client still gets the whole file
            c = slow[0]
            data = b""
            while len(data) < (8 << 20) + 200:
                chunk = c.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and len(data) - data.index(b"\r\n\r\n") - 4 >= 8 << 20:
                    break
            body = data[data.index(b"\r\n\r\n") + 4:]
            assert hashlib.sha256(body).digest() == hashlib.sha256(big.read_bytes()).digest()
        finally:
            for c in slow:
                c.close()


def test_metrics_and_server_status_count_the_files(project, app):
    with serve(app, static={"/static/": project / "static"}, metrics_path="/metrics",
               status_path="/server-status") as s:
        for _ in range(5):
            assert request(s, "GET", "/static/css/site.css")[0] == 200
        metrics = request(s, "GET", "/metrics")[2].decode()
        assert 'mpmserver_static_responses_total{slot="0"} 5' in metrics.splitlines()
        auto = dict(line.split(": ", 1) for line in request(s, "GET", "/server-status?auto")[2].decode().splitlines()
                    if ": " in line)
        assert auto["StaticAccesses"] == "5" and int(auto["Total Accesses"]) >= 5  # the files count there too
        page = request(s, "GET", "/server-status")[2].decode()
        assert "<th rowspan=\"2\">Static</th>" in page
        # Files count in the responses by status code too, with the 404 the loop wrote.
        assert request(s, "GET", "/static/css/no-such.css")[0] == 404
        metrics = request(s, "GET", "/metrics")[2].decode().splitlines()
        assert 'mpmserver_responses_total{code="404"} 1' in metrics
        assert any(line.startswith('mpmserver_responses_total{code="200"} ') and int(line.split()[-1]) >= 6
                   for line in metrics)  # five files and the first scrape


@pytest.mark.parametrize("request_bytes", [
    b"GET /static/js/app.js HTTP/1.0\r\n\r\n",
    b"GET /static/js/app.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
])
def test_http_10_and_connection_close_end_the_connection_after_the_file(server, request_bytes):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(request_bytes)
        data = b""
        while chunk := c.recv(65536):  # the server closes: the loop ends
            data += chunk
    status, headers, body = parse(data)
    assert (status, body, headers["connection"]) == (200, b"console.log('plain');\n", "close")


def test_a_static_path_with_a_body_or_without_host_goes_to_the_worker(server, app):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(b"GET /static/js/app.js HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    assert parse(data)[2] == b"app /static/js/app.js"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(b"GET /static/js/app.js HTTP/1.1\r\n\r\n")  # no Host: h11's 400, as for any request
        assert parse(c.recv(65536))[0] == 400
    assert app.paths == ["/static/js/app.js"]


def test_aliasmatch_serves_what_its_pattern_maps(project, app):
    with serve(app, alias_matches=[(r"^/assets/v[0-9]+/(.*\.css)$", str(project / "static" / "css" / "$1"))]) as s:
        status, headers, body = request(s, "GET", "/assets/v3/site.css")
        assert (status, body, headers["content-type"]) == (200, CSS, "text/css; charset=utf-8")
        assert raw(s, b"/assets/v3/../../settings.css")[0] == 400
        assert request(s, "GET", "/assets/v3/site.js")[2] == b"app /assets/v3/site.js"  # not matched: the app's
        assert app.paths == ["/assets/v3/site.js"]


def test_static_files_over_tls_go_by_writes_not_sendfile(project):
    # sendfile would put plaintext on a TLS connection: the room falls back to
    # writes there (connection.send_file). A file larger than one write, whole
    # and intact over a verified HTTPS connection, keep-alive, then a range.
    import ssl

    big = os.urandom(3 * 1024 * 1024 + 17)
    (project / "static" / "big.bin").write_bytes(big)
    app = App()
    with serve(app, tls=True, static={"/static/": str(project / "static")}) as server:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.client_context(), timeout=20)
        conn.request("GET", "/static/big.bin")
        r = conn.getresponse()
        assert r.status == 200 and hashlib.sha256(r.read()).digest() == hashlib.sha256(big).digest()
        conn.request("GET", "/static/css/site.css", headers={"Range": "bytes=10-19"})
        r = conn.getresponse()
        assert (r.status, r.read()) == (206, CSS[10:20])
        conn.close()
    assert app.paths == []
