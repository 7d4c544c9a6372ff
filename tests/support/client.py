"""One copy of each small HTTP client the tests share: a GET on a fresh
connection (by port or by URL), a JSON GET that asserts 200, a raw
response parser, and socket checks."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request

from tests.support.server import read_response


def get(port: int, path: str = "/hello", timeout: float = 15.0) -> tuple[int, bytes]:
    """One GET with Connection: close on a fresh connection: (status, body)."""
    status, _, body = http_get(port, path, timeout)
    return status, body


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One GET with Connection: close on a fresh connection: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        status, headers, body, _ = read_response(s)
        return status, headers, body


def get_url(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """urllib's GET of a whole URL: (status, body), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(where: int | http.client.HTTPConnection, path: str = "/", headers: dict | None = None,
             body: bytes | None = None, method: str = "GET") -> dict:
    """The JSON answer to one request, which must be a 200: on a fresh
    connection to a port, or on a connection the caller keeps open."""
    conn = http.client.HTTPConnection("127.0.0.1", where, timeout=10) if isinstance(where, int) else where
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
    finally:
        if isinstance(where, int):
            conn.close()
    assert r.status == 200, (r.status, data)
    return json.loads(data)


def parse(resp: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of the first response in resp."""
    assert resp.startswith(b"HTTP/1.1 "), f"not an HTTP response: {resp[:200]!r}"
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return int(lines[0].split()[1]), headers, body


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes (EOF or reset) within timeout, with no data."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
