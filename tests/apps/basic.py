"""WSGI apps the integration tests serve (imported by the server's children,
so they live in the repository where a dropped-privilege child can read them)."""

import json
import os
import threading
import time
from wsgiref.validate import validator


def _params(environ):
    out = {}
    for part in environ.get("QUERY_STRING", "").split("&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def raw_app(environ, start_response):
    path = environ["PATH_INFO"]
    q = _params(environ)
    if path == "/hello":
        body = b"Hello, World!"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echo":
        # wsgiref's validator insists on read(size): read in blocks to the end.
        chunks = []
        while True:
            block = environ["wsgi.input"].read(65536)
            if not block:
                break
            chunks.append(block)
        body = b"".join(chunks)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echo-lines":
        lines = list(environ["wsgi.input"])
        body = json.dumps([line.decode("latin-1") for line in lines]).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/noread":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/slow":
        delay = float(q.get("t", "1"))
        time.sleep(delay)
        body = f"slept {delay}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/slowbody":
        # A long response that streams for t seconds: graceful tests check it arrives whole.
        delay = float(q.get("t", "1"))
        chunks = [b"%d-" % i + b"x" * 1000 + b"\n" for i in range(10)]

        def gen():
            for chunk in chunks:
                time.sleep(delay / len(chunks))
                yield chunk
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(sum(map(len, chunks))))])
        return gen()
    if path == "/chunked":
        def gen():
            yield b"one,"
            yield b""
            yield b"two,"
            yield b"three"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path.startswith("/env"):
        env = {k: v for k, v in environ.items() if isinstance(v, str)}
        env["wsgi.multithread"] = environ["wsgi.multithread"]
        env["wsgi.multiprocess"] = environ["wsgi.multiprocess"]
        env["wsgi.run_once"] = environ["wsgi.run_once"]
        env["wsgi.version"] = list(environ["wsgi.version"])
        env["wsgi.input_terminated"] = environ.get("wsgi.input_terminated")
        body = json.dumps(env).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/error":
        raise RuntimeError("boom from the app")
    if path == "/error-after-headers":
        def gen():
            yield b"partial"
            raise RuntimeError("boom after headers")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written,")
        return [b"returned"]
    if path == "/pid":
        body = json.dumps({"pid": os.getpid(), "uid": os.getuid(), "euid": os.geteuid(),
                           "gid": os.getgid(), "groups": os.getgroups(),
                           "thread": threading.current_thread().name}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/file":
        f = open(os.path.join(os.path.dirname(__file__), q.get("name", "data.bin")), "rb")
        headers = [("Content-Type", "application/octet-stream")]
        if "cl" in q:
            headers.append(("Content-Length", q["cl"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 8192)
    if path == "/too-long":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"0123456789"]
    if path == "/too-short":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "50")])
        return [b"short"]
    if path == "/split-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Evil", "a\r\nSet-Cookie: x=1")])
        return [b"never"]
    if path == "/hop":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Keep-Alive", "timeout=5")])
        return [b"never"]
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5"), ("Connection", "close")])
        return [b"close"]
    if path == "/exc-info":
        try:
            raise ValueError("replaced")
        except ValueError:
            import sys
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Content-Length", "4")], sys.exc_info())
        return [b"nope"]
    if path == "/exit":
        os._exit(3)
    if path == "/crash":
        os.kill(os.getpid(), 9)
    body = b"not found"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class _Closing:
    """Body iterable that records close() calls (checked through /closed)."""

    closed = 0

    def __init__(self, inner):
        self.inner = inner

    def __iter__(self):
        return iter(self.inner)

    def close(self):
        _Closing.closed += 1
        if hasattr(self.inner, "close"):
            self.inner.close()


def closing_app(environ, start_response):
    if environ["PATH_INFO"] == "/closed":
        body = str(_Closing.closed).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return _Closing(raw_app(environ, start_response))


# Everything is served through wsgiref's validator: PEP 3333 violations by the
# server raise AssertionError (a 500 the tests would see) or warn.
app = validator(raw_app)


def import_error_app():
    raise ImportError("never")


def no_body_app(environ, start_response):
    """/204 and /304 with a body the app should not have sent."""
    code = environ["PATH_INFO"].strip("/")
    status = {"204": "204 No Content", "304": "304 Not Modified"}.get(code, "200 OK")
    start_response(status, [("Content-Type", "text/plain")])
    return [b"should not be sent"]
