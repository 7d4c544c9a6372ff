"""The WSGI applications the benchmarks serve.

One module so every server in benchmarks/compare.py and every workload in
benchmarks/test_workloads.py loads exactly the same code: `benchmarks.apps:app`
routes by path, and each workload also has its own callable. Requests the
micro-benchmarks share (POST_10K) are here too, beside the app that answers them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

HELLO = b"Hello, World!"
JSON_BODY = json.dumps({"message": "Hello, World!"}).encode()
FILE_SIZE = 1024 * 1024
# What wrk sends for compare.py's post10k (head and body in one read), for
# the micro-benchmarks that feed a request to the server's own code.
POST_10K = (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 10240\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 10240)


def plaintext(environ, start_response):
    """TechEmpower plaintext."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def json_app(environ, start_response):
    """TechEmpower JSON (serialized per request, as the test requires)."""
    body = json.dumps({"message": "Hello, World!"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def echo(environ, start_response):
    """Returns the request body."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def big_file_path() -> str:
    """A 1 MB file, made once per machine and user in the temp directory."""
    path = os.path.join(tempfile.gettempdir(), f"mpmserver-bench-1mb-{os.getuid()}.bin")
    if not os.path.exists(path) or os.path.getsize(path) != FILE_SIZE:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(bytes(range(256)) * (FILE_SIZE // 256))
        os.replace(tmp, path)
    return path


def file_app(environ, start_response):
    """1 MB through wsgi.file_wrapper (the server may use sendfile)."""
    f = open(big_file_path(), "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(FILE_SIZE))])
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(f, 65536)
    return iter(lambda: f.read(65536), b"")  # pragma: no cover - every server here has one


def sleep_app(environ, start_response):
    """10 ms of waiting (a database call, say): threads, not CPU, are the limit."""
    time.sleep(0.010)
    return plaintext(environ, start_response)


ROUTES = {
    "/": plaintext,
    "/plaintext": plaintext,
    "/json": json_app,
    "/echo": echo,
    "/file": file_app,
    "/sleep": sleep_app,
}


def app(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", "/"))
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"not found"]
    return handler(environ, start_response)
