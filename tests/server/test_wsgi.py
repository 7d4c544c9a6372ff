"""PEP 3333 from the app's side, under wsgiref's validator."""

import http.client
import json
import socket

from tests.support.client import get_json
from tests.support.server import read_response


def test_environ_is_complete(server):
    env = get_json(server.port, "/env/caf%C3%A9%20x?a=1&b=%20", headers={"X-Many": "1", "Content-Type": "text/plain"})
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    # Percent-decoded, then latin-1 "bytes as str" (PEP 3333).
    assert env["PATH_INFO"] == "/env/caf\u00c3\u00a9 x"
    assert env["QUERY_STRING"] == "a=1&b=%20"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_NAME"]
    assert env["REMOTE_ADDR"] == "127.0.0.1" and int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_X_MANY"] == "1" and env["HTTP_HOST"].startswith("127.0.0.1")
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True


def raw(server, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request)
        status, _, body, _ = read_response(s)
        return status, body


def test_repeated_headers_are_joined(server):
    status, body = raw(server, b"GET /env HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
    assert json.loads(body)["HTTP_X_A"] == "1, 2"


def test_underscore_headers_cannot_spoof_dashed_ones(server):
    status, body = raw(server, b"GET /env HTTP/1.1\r\nHost: t\r\nX-User: good\r\nX_User: evil\r\n\r\n")
    env = json.loads(body)
    assert env["HTTP_X_USER"] == "good"


def test_post_body_and_content_length(server):
    env = get_json(server.port, "/env", body=b"abc", method="POST")
    assert env["CONTENT_LENGTH"] == "3"


def test_input_iteration_and_readline(server):
    status, body = raw(server, b"POST /echo-lines HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab\ncd\nefgh")
    assert status == 200 and json.loads(body) == ["ab\n", "cd\n", "efgh"]


def test_flask_app(server_factory):
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", app="tests.apps.flask_app:app").start()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("GET", "/")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b"Hello from Flask"
    conn.request("POST", "/json?x=1", body=json.dumps({"k": [1, 2]}), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"got": {"k": [1, 2]}, "args": {"x": "1"}}
    conn.request("GET", "/items/42", headers={"User-Agent": "pytest"})
    r = conn.getresponse()
    assert json.loads(r.read()) == {"id": 42, "ua": "pytest"}
    conn.request("GET", "/missing")
    r = conn.getresponse()
    assert r.status == 404
    r.read()
    conn.close()


def test_close_is_called_on_every_path(server_factory):
    s = server_factory("--start-servers", "1", "--threads-per-child", "1", "--max-request-workers", "1",
                       "--min-spare-threads", "1", "--max-spare-threads", "3",
                       app="tests.apps.basic:closing_app").start()
    before = int(raw(s, b"GET /closed HTTP/1.1\r\nHost: t\r\n\r\n")[1])
    for path in (b"/hello", b"/chunked", b"/error-after-headers", b"/too-long"):
        try:
            raw(s, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        except (ConnectionError, ValueError):
            pass
    status, body = raw(s, b"GET /closed HTTP/1.1\r\nHost: t\r\n\r\n")
    assert int(body) - before == 4


def test_app_that_fails_to_import_stops_the_server(tmp_path):
    import subprocess
    import sys
    import time

    from tests.support.server import ROOT, free_port

    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "mpmserver", "tests.apps.broken:app", "--listen",
                          f"127.0.0.1:{free_port()}", "--start-servers", "2", "--threads-per-child", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "this app module is broken on purpose" in out.stderr and "Traceback" in out.stderr
    assert time.monotonic() - start < 10


def test_validator_sees_no_violation(server):
    """Every path of the validated app, then: no AssertionError and no
    WSGIWarning from wsgiref.validate in the server's log."""
    requests = [
        b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
        b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /echo-lines HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\na\nb\n",
        b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /write HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /env?x=1 HTTP/1.1\r\nHost: t\r\nCookie: a=1\r\n\r\n",
        b"GET /exc-info HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /missing HTTP/1.0\r\n\r\n",
    ]
    for req in requests:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(req)
            status, _, _, _ = read_response(s) if not req.startswith(b"HEAD") else (200, None, None, None)
            assert status in (200, 404, 503), req
    log = server.stderr
    assert "AssertionError" not in log and "Warning" not in log.replace("[warn]", ""), log


def test_close_is_called_when_the_client_disconnects(server_factory):
    from tests.support.server import wait_for

    s = server_factory("--start-servers", "1", "--threads-per-child", "1", "--max-request-workers", "1",
                       "--min-spare-threads", "1", "--max-spare-threads", "3",
                       app="tests.apps.basic:closing_app").start()
    before = int(raw(s, b"GET /closed HTTP/1.1\r\nHost: t\r\n\r\n")[1])
    # A streamed response the client abandons after its first bytes.
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    c.sendall(b"GET /slowbody?t=2 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert c.recv(100).startswith(b"HTTP/1.1 200")
    c.close()
    wait_for(lambda: int(raw(s, b"GET /closed HTTP/1.1\r\nHost: t\r\n\r\n")[1]) == before + 1, 15,
             what="close() after the client went away")
