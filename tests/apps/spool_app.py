"""WSGI app for tests/server/test_spooling.py and benchmarks/slow_clients.py.

/upload...          reads wsgi.input to its end: "<sha256 hex> <length> <CONTENT_LENGTH>"
/upload/stream/...  reads the first ``?n`` bytes (default 1024) and answers at once,
                    leaving the rest unread (a streaming app under RequestBodySpoolExclude)
/download?N         N bytes of pattern(N) as one body; /download?N&gen: in 64 KiB pieces
/hello              "hello"
"""

import hashlib


def pattern(size: int) -> bytes:
    """What /download sends: every byte value, repeated, cut to ``size``."""
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


def _send(start_response, body: bytes, status: str = "200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/hello":
        return _send(start_response, b"hello")
    if path.startswith("/upload/stream/"):
        first = environ["wsgi.input"].read(int(query or 1024))
        return _send(start_response, b"streamed %d" % len(first))
    if path.startswith("/upload"):
        digest = hashlib.sha256()
        stream = environ["wsgi.input"]
        total = 0
        while block := stream.read(65536):
            digest.update(block)
            total += len(block)
        return _send(start_response, f"{digest.hexdigest()} {total} {environ.get('CONTENT_LENGTH')}".encode())
    if path == "/download":
        size_text, _, gen = query.partition("&")
        body = pattern(int(size_text))
        if not gen:
            return _send(start_response, body)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return (body[i:i + 65536] for i in range(0, len(body), 65536))
    return _send(start_response, b"not found", "404 Not Found")
