"""HTTP details a client or a proxy relies on (issue 14, item 6): header case,
short fixed error bodies, request-target forms, HTTP/2 request lines, and the
strict reading of Host and Content-Length. A real server, raw sockets."""

from __future__ import annotations

import pytest

from mpmserver.testing import serve
from tests.support.client import parse
from tests.support.server import http


def app(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} {environ.get('REQUEST_URI')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Custom-Header", "yes"),
                              ("content-LENGTH", str(len(body)))])
    return [body]


def reading_app(environ, start_response):
    try:
        body = environ["wsgi.input"].read()
    except OSError:
        raise
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def server():
    with serve(app, raise_app_errors=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def reader():
    with serve(reading_app, raise_app_errors=False, limit_request_field_size=100) as srv:
        yield srv


H = b"Host: t\r\nConnection: close\r\n"


def test_response_header_names_keep_the_apps_case(server):
    resp = http(server.port, b"GET /a HTTP/1.1\r\n" + H + b"\r\n")
    head = resp.partition(b"\r\n\r\n")[0]
    assert b"\r\nX-Custom-Header: yes\r\n" in head
    assert b"\r\nContent-Type: text/plain\r\n" in head
    assert b"\r\ncontent-LENGTH: 6\r\n" in head
    assert parse(resp)[2] == b"GET /a"


def test_a_400_body_reflects_nothing_of_the_request(server):
    resp = http(server.port, b"GET /x<script> y HTTP/1.1\r\n" + H + b"\r\n")
    status, _, body = parse(resp)
    assert status == 400
    assert b"bytearray" not in body and b"script" not in body and b"/x" not in body, body


def test_a_trailer_error_body_reflects_nothing(reader):
    name = b"X-Reflected-" + b"n" * 100
    resp = http(reader.port, b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                + b"3\r\nabc\r\n0\r\n" + name + b": v\r\n\r\n")
    status, _, body = parse(resp)
    assert status == 431
    assert b"Reflected" not in body and b"b'" not in body, body


def test_a_malformed_chunk_gets_a_fixed_text(reader):
    resp = http(reader.port, b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    status, _, body = parse(resp)
    assert status == 400
    assert body == b"400 Bad Request\nmalformed request body\n", body


@pytest.mark.parametrize("line,status", [
    (b"GET foo/bar HTTP/1.1", 400),
    (b"GET * HTTP/1.1", 400),
    (b"GET example.com:80 HTTP/1.1", 400),
    (b"CONNECT /x HTTP/1.1", 400),
    (b"GET / HTTP/2.0", 505),
    (b"OPTIONS * HTTP/1.1", 200),
    (b"GET http://t/abs HTTP/1.1", 200),
])
def test_request_target_forms_and_versions(server, line, status):
    resp = http(server.port, line + b"\r\n" + H + b"\r\n")
    assert parse(resp)[0] == status, resp[:200]


@pytest.mark.parametrize("headers", [
    b"Host: a\r\nHost: b\r\n",
    b"Host: a\r\nHost: a\r\n",
    b"Host: t\r\nContent-Length: 5, 5\r\n",
    b"Host: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n",
])
def test_more_than_one_host_or_content_length_is_a_400(server, headers):
    resp = http(server.port, b"POST / HTTP/1.1\r\n" + headers + b"Connection: close\r\n\r\nhello")
    status, hdrs, _ = parse(resp)
    assert status == 400 and hdrs["connection"] == "close"


def test_the_server_answers_normally_afterwards(server):
    assert parse(http(server.port, b"GET /after HTTP/1.1\r\n" + H + b"\r\n"))[:3:2] == (200, b"GET /after")
