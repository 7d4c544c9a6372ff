"""WSGI app for tests/server/ (test_hostile.py, test_timeouts.py, test_fuzz.py) and tests/external/test_privileges.py.

What the app observes (an exception class on wsgi.input.read) is written to
standard error, which the children share with the master: the tests read it
from the server's stderr file. A dropped-privilege child cannot write into
pytest's tmp directories, so there is no other channel.
"""

import json
import os
import sys


def _report(tag: str, text: str) -> None:
    sys.stderr.write(f"HOSTILE-APP {tag}: {text}\n")
    sys.stderr.flush()


def _send(start_response, body: bytes, status: str = "200 OK", ctype: str = "text/plain"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


_BAD_VALUES = {"cr": "a\rInjected: cr", "lf": "a\nInjected: lf", "crlf": "a\r\nInjected: crlf",
               "nul": "a\x00Injected: nul"}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        return _send(start_response, b"hello")
    if path == "/whoami":
        body = json.dumps({"resuid": os.getresuid(), "resgid": os.getresgid(),
                           "groups": sorted(os.getgroups())}).encode()
        return _send(start_response, body, ctype="application/json")
    if path == "/headers":
        # Which request headers reached the app, as HTTP_* keys (plus CONTENT_LENGTH).
        keys = {k: v for k, v in environ.items()
                if k.startswith("HTTP_") or k in ("CONTENT_LENGTH", "CONTENT_TYPE")}
        return _send(start_response, json.dumps(keys).encode(), ctype="application/json")
    if path == "/environ":
        # The request as the app sees it (absolute-form targets, singleton fields).
        keys = ("PATH_INFO", "QUERY_STRING", "HTTP_HOST", "SERVER_NAME", "REQUEST_URI", "CONTENT_TYPE")
        return _send(start_response, json.dumps({k: environ.get(k) for k in keys}).encode(),
                     ctype="application/json")
    if path == "/read":
        # Read the body to its end; report what reading raised, then re-raise
        # it so the server answers (413) or closes the connection.
        tag = environ.get("QUERY_STRING", "") or "read"
        total = 0
        try:
            while True:
                block = environ["wsgi.input"].read(4096)
                if not block:
                    break
                total += len(block)
        except Exception as exc:
            _report(tag, f"{type(exc).__name__} oserror={isinstance(exc, OSError)} after={total}")
            raise
        _report(tag, f"complete {total}")
        return _send(start_response, b"read %d" % total)
    if path == "/bad-header":
        kind = environ.get("QUERY_STRING", "")
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bad", _BAD_VALUES[kind])])
        return [b"never sent"]
    if path == "/big":
        # 64 MiB streamed in 64 KiB blocks: more than any socket buffer holds.
        block = b"x" * 65536

        def gen():
            for _ in range(1024):
                yield block
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(1024 * len(block)))])
        return gen()
    if path == "/file":
        # FILE_SIZE bytes of file_content() through wsgi.file_wrapper (sendfile).
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(f"/proc/self/fd/{_file_fd()}", "rb"))
    if path == "/one-piece":
        # FILE_SIZE bytes of file_content() as one bytes object: an ordinary body.
        return _send(start_response, file_content(), ctype="application/octet-stream")
    return _send(start_response, b"not found", "404 Not Found")


FILE_SIZE = 8 << 20
_fd = None


def file_content() -> bytes:
    """What /file and /one-piece send: every byte value, repeated."""
    return bytes(range(256)) * (FILE_SIZE // 256)


def _file_fd() -> int:
    """A descriptor of an unlinked file holding file_content(), made once per
    process; each request opens it anew through /proc (its own offset)."""
    global _fd
    if _fd is None:
        import tempfile
        f = tempfile.TemporaryFile()
        f.write(file_content())
        f.flush()
        _fd = os.dup(f.fileno())
        f.close()
    return _fd
