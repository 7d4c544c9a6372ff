"""Issue 25 item 5 over real sockets: HTTP/1.1 framing as strict as the
strictest peer. Chunk extensions, trailers, a chunked request followed by a
partial one, absolute-form targets and fragments, singleton fields sent twice.

Each test sends raw bytes to the real server (tests/apps/hostile_apps.py);
every 400 must be in the access log, and the next connection served.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.support.client import parse
from tests.support.hostile import APP, H, assert_healthy, assert_refused, server_args
from tests.support.server import Server, http, read_response, wait_for

CHUNKED = b"Transfer-Encoding: chunked\r\n"
NEXT = b"GET /hello HTTP/1.1\r\n" + H + b"\r\n"  # pipelined after a refused request: never served


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """One server for the module, with its access log on standard output."""
    tmp = tmp_path_factory.mktemp("strict")
    sb = str(tmp / "scoreboard")
    s = Server(*server_args(sb), app=APP, tmp_path=tmp, access_log=True)
    s.scoreboard_path = sb
    s.start()
    yield s
    s.stop()


def logged(s: Server, tag: str, status: int) -> None:
    """The access log has the request tagged ``tag`` with ``status``."""
    wait_for(lambda: any(tag in ln and f" {status} " in ln for ln in s.stdout.splitlines()), 10,
             what=f"an access log line for {tag} with {status}")


def post_chunked(s: Server, tag: str, body: bytes, expect: bool) -> bytes:
    """POST a chunked ``body`` (its framing as given) to /read, a request
    pipelined after it; the response without a 100 Continue. ``expect``:
    Expect: 100-continue keeps the listener from buffering the body, so the
    worker's reader must judge it as the listener does."""
    raw = (b"POST /read?" + tag.encode() + b" HTTP/1.1\r\n" + H + CHUNKED
           + (b"Expect: 100-continue\r\n" if expect else b"") + b"\r\n" + body + NEXT)
    resp = http(s.port, raw)
    if expect and resp.startswith(b"HTTP/1.1 100"):
        resp = resp.partition(b"\r\n\r\n")[2]
    return resp


# -- chunk extensions (RFC 9112 7.1.1) -----------------------------------------

BAD_CHUNK_LINES = {
    "bare-cr": b"5;a\rb\r\n",
    "nul": b"5;a\x00\r\n",
    "del": b"5;a\x7f\r\n",
    "cr-in-quoted": b'5;a="\r"\r\n',
    "no-name": b"5;\r\n",
    "space-in-size": b"5 5\r\n",
}


@pytest.mark.parametrize("expect", [False, True], ids=["buffered-by-listener", "read-by-worker"])
@pytest.mark.parametrize("kind", list(BAD_CHUNK_LINES))
def test_malformed_chunk_extension_gives_400_and_closes(strict, kind, expect):
    tag = f"ext-{kind}-{int(expect)}"
    resp = post_chunked(strict, tag, BAD_CHUNK_LINES[kind] + b"hello\r\n0\r\n\r\n", expect)
    assert_refused(resp, 400)  # and nothing after it: the pipelined request is not served
    logged(strict, tag, 400)
    assert_healthy(strict)


def test_valid_chunk_extensions_are_accepted(strict):
    raw = (b"POST /read?ext-ok HTTP/1.1\r\n" + H + CHUNKED + b"\r\n"
           b'5;a;b=c ; d = "x\\"y z"\r\nhello\r\n3;e=f\r\nabc\r\n0\r\n\r\n' + NEXT[:-2]
           + b"Connection: close\r\n\r\n")
    resp = http(strict.port, raw)
    first, _, rest = resp.partition(b"read 8")
    assert parse(first + b"read 8")[::2] == (200, b"read 8")
    assert parse(rest)[::2] == (200, b"hello")


# -- trailers under the head's rules -------------------------------------------

@pytest.mark.parametrize("trailer", [
    pytest.param(b"0\r\n\n", id="bare-lf-end"),
    pytest.param(b"0\r\nX: y\n\r\n", id="bare-lf-field"),
    pytest.param(b"0\r\nX: y\r\n z\r\n\r\n", id="obs-fold"),
    pytest.param(b"0\r\nX: a\rb\r\n\r\n", id="bare-cr"),
    pytest.param(b"0\r\nX: a\x01\r\n\r\n", id="control"),
])
@pytest.mark.parametrize("expect", [False, True], ids=["buffered-by-listener", "read-by-worker"])
def test_malformed_trailer_section_gives_400(strict, trailer, expect):
    assert_refused(post_chunked(strict, "trailer", b"3\r\nabc\r\n" + trailer, expect), 400)
    logged(strict, "/read?trailer", 400)
    assert_healthy(strict)


@pytest.mark.parametrize("field", [b"Content-Length: 3", b"Transfer-Encoding: chunked", b"Host: b"],
                         ids=["content-length", "transfer-encoding", "host"])
@pytest.mark.parametrize("expect", [False, True], ids=["buffered-by-listener", "read-by-worker"])
def test_trailer_fields_that_frame_or_route_give_400(strict, field, expect):
    # Found by the differential corpus (tests/external/framing_corpus.py):
    # gunicorn refuses them, mpmserver let them through.
    resp = post_chunked(strict, "forbidden-trailer", b"3\r\nabc\r\n0\r\n" + field + b"\r\n\r\n", expect)
    assert_refused(resp, 400)
    logged(strict, "/read?forbidden-trailer", 400)
    assert_healthy(strict)


def test_well_formed_trailers_are_accepted(strict):
    raw = (b"POST /read?trailer-ok HTTP/1.1\r\n" + H + CHUNKED + b"Connection: close\r\n\r\n"
           b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other:\tv\r\n\r\n")
    assert parse(http(strict.port, raw))[::2] == (200, b"read 3")


# -- a complete chunked request, then part of the next -------------------------

@pytest.mark.parametrize("after", [b"G", b"\x00", b"GET /hello HT"], ids=["G", "nul", "half-head"])
def test_complete_chunked_request_followed_by_a_partial_one_is_answered_at_once(strict, after):
    raw = b"GET /hello HTTP/1.1\r\nHost: a\r\n" + CHUNKED + b"\r\n0\r\n\r\n" + after
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as c:
        began = time.monotonic()
        c.sendall(raw)
        status, _, body, _ = read_response(c)
        took = time.monotonic() - began
    assert (status, body) == (200, b"hello")
    assert took < 2, f"answered after {took:.1f} s: the body's end was not seen"


def test_chunked_body_in_pieces_is_complete_when_its_framing_ends(strict):
    # The last chunk arrives with the start of a pipelined request: the
    # buffered body is complete there, not only at a trailing CRLFCRLF.
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as c:
        c.sendall(b"POST /read?pieces HTTP/1.1\r\n" + H + CHUNKED + b"\r\n5\r\nhel")
        time.sleep(0.05)
        c.sendall(b"lo\r\n0\r\nX: y\r\n\r\nGET /hel")
        status, _, body, rest = read_response(c)
        assert (status, body) == (200, b"read 5")
        c.sendall(b"lo HTTP/1.1\r\n" + H + b"\r\n")
        assert read_response(c, rest)[::2] == (200, b"hello")


# -- request targets (RFC 9112 3.2) --------------------------------------------

def environ_of(s: Server, raw: bytes) -> dict:
    status, _, body = parse(http(s.port, raw))
    assert status == 200, body
    return json.loads(body)


@pytest.mark.parametrize("target, host, path, query", [
    (b"http://a.example/environ?q=1", "a.example", "/environ", "q=1"),
    (b"http://a.example:8080/environ", "a.example:8080", "/environ", ""),
    (b"https://b.example/environ?x", "b.example", "/environ", "x"),
    (b"http://user:pw@c.example/environ", "c.example", "/environ", ""),
    (b"ftp://d.example/environ", "d.example", "/environ", ""),
])
def test_absolute_form_target_gives_its_path_and_its_authority_as_host(strict, target, host, path, query):
    env = environ_of(strict, b"GET " + target + b" HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["HTTP_HOST"]) == (path, query, host)
    assert env["REQUEST_URI"] == target.decode()  # as sent, as Apache's


@pytest.mark.parametrize("target", [b"/environ#frag", b"http://a/environ#frag", b"/environ?q#f"])
def test_fragment_in_the_target_gives_400(strict, target):
    assert_refused(http(strict.port, b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n" + NEXT), 400)
    logged(strict, target.decode(), 400)
    assert_healthy(strict)


def test_a_head_naming_http_0_9_gets_505(strict):
    # Found by the differential corpus: served as HTTP/1.x before (Apache and
    # gunicorn answer 400); an HTTP/0.9 request has no version and no fields.
    resp = http(strict.port, b"GET /environ?v09 HTTP/0.9\r\n" + H + b"\r\n" + NEXT)
    assert_refused(resp, 505)
    logged(strict, "/environ?v09", 505)
    assert_healthy(strict)


# -- singleton fields -----------------------------------------------------------

@pytest.mark.parametrize("fields", [
    pytest.param(b"Content-Type: text/plain\r\nContent-Type: text/html\r\n", id="content-type"),
    pytest.param(b"Authorization: Basic YTpi\r\nAuthorization: Basic Yzpk\r\n", id="authorization"),
    pytest.param(b"Range: bytes=0-1\r\nRange: bytes=5-6\r\n", id="range"),
    pytest.param(b"Host: u\r\n", id="host"),
])
def test_singleton_field_twice_with_different_values_gives_400(strict, fields):
    raw = b"GET /environ?twice HTTP/1.1\r\n" + H + fields + b"\r\n" + NEXT
    assert_refused(http(strict.port, raw), 400)
    logged(strict, "/environ?twice", 400)
    assert_healthy(strict)


def test_singleton_field_twice_with_one_value_is_kept_once(strict):
    env = environ_of(strict, b"GET /environ HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\n"
                     b"Content-Type: text/plain\r\nAccept: a\r\nAccept: b\r\nConnection: close\r\n\r\n")
    assert env["CONTENT_TYPE"] == "text/plain"
