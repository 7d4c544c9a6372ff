"""A chunked body's framing (protocol.ChunkedBody), absolute-form targets and
fragments (issue 25 item 5): the pure rules, alone and split into pieces."""

from __future__ import annotations

import pytest

from mpmserver.http.errors import MalformedBody
from mpmserver.http.protocol import (
    SINGLETON_FIELDS,
    ChunkedBody,
    HeadError,
    HeadRules,
    check_request_target,
    split_absolute_form,
)
from mpmserver.http.wsgi import build_environ

RULES = HeadRules(8190, 100, 8190, 1 << 20)


def end_of(body: bytes, piece: int = 0) -> int:
    """Where the body ends in ``body`` (-1: not yet), fed whole or in pieces."""
    c = ChunkedBody(RULES)
    if not piece:
        return c.feed(body)
    for i in range(0, len(body), piece):
        end = c.feed(body[i:i + piece])
        if end >= 0:
            return i + end
    return -1


@pytest.mark.parametrize("piece", [0, 1, 2, 7])
@pytest.mark.parametrize("body, end", [
    (b"0\r\n\r\n", 5),
    (b"0\r\n\r\nGET", 5),
    (b"5\r\nhello\r\n0\r\n\r\n", 15),
    (b"5;a\r\nhello\r\n0\r\n\r\n", 17),
    (b'5 ; a = "q\\"x" ;b=c \r\nhello\r\n0\r\n\r\n', 34),
    (b"A\r\n0123456789\r\n0\r\nX: y\r\nZ:\tw\r\n\r\nG", 32),
    (b"5\r\nhello\r\n0\r\n", -1),
    (b"5\r\nhel", -1),
])
def test_well_formed_bodies_end_where_their_framing_does(body, end, piece):
    assert end_of(body, piece) == end


@pytest.mark.parametrize("piece", [0, 1, 3])
@pytest.mark.parametrize("body, status", [
    (b"5;a\rb\r\nhello\r\n0\r\n\r\n", 400),
    (b"5;a\x00\r\nhello\r\n0\r\n\r\n", 400),
    (b"5;a\x7f\r\nhello\r\n0\r\n\r\n", 400),
    (b'5;a="\r"\r\nhello\r\n0\r\n\r\n', 400),
    (b"5;\r\nhello\r\n0\r\n\r\n", 400),
    (b"5;a=\r\nhello\r\n0\r\n\r\n", 400),
    (b"5;a=b c\r\nhello\r\n0\r\n\r\n", 400),
    (b"zz\r\nabc\r\n0\r\n\r\n", 400),
    (b"5\nhello\r\n0\r\n\r\n", 400),
    (b"5\r\nhelloXX0\r\n\r\n", 400),
    (b"0\r\n\n", 400),
    (b"0\r\nX: y\n\r\n", 400),
    (b"0\r\nX: y\r\n z\r\n\r\n", 400),
    (b"0\r\n\tX: y\r\n\r\n", 400),
    (b"0\r\nX: a\rb\r\n\r\n", 400),
    (b"0\r\nX: a\x01\r\n\r\n", 400),
    (b"0\r\nX: " + b"t" * 9000 + b"\r\n\r\n", 431),
    (b"0\r\n" + b"T: t\r\n" * 101 + b"\r\n", 431),
    (b"5;" + b"a" * 9000 + b"\r\n", 400),
])
def test_malformed_bodies_are_refused(body, status, piece):
    with pytest.raises(MalformedBody) as err:
        end_of(body, piece)
    assert err.value.status == status


@pytest.mark.parametrize("field", [b"Content-Length: 5", b"transfer-encoding: chunked", b"Host: b",
                                   b"Trailer: X", b"HOST : b"])
def test_trailer_fields_that_frame_or_route_are_refused(field):
    # RFC 9110 6.5.1: a front end merging them into the head would frame or
    # route by them; gunicorn refuses them too.
    with pytest.raises(MalformedBody) as info:
        end_of(b"5\r\nhello\r\n0\r\n" + field + b"\r\n\r\n")
    assert info.value.status == 400
    # Names that only begin like them pass.
    assert end_of(b"0\r\nHostname: b\r\nTrailers: x\r\n\r\n") == 31


@pytest.mark.parametrize("version", [b"0.9", b"2.0", b"3.0", b"9.9"])
def test_a_version_other_than_1_x_gets_505(version):
    with pytest.raises(HeadError) as info:
        check_request_target(b"GET", b"/", version)
    assert info.value.status == 505


def test_bytes_after_the_end_are_not_looked_at():
    c = ChunkedBody(RULES)
    assert c.feed(b"0\r\n\r\n") == 5 and c.done
    assert c.feed(b"\x00garbage\n") == 0


@pytest.mark.parametrize("target, authority, path", [
    (b"http://a/x?q", b"a", b"/x?q"),
    (b"http://a:81", b"a:81", b"/"),
    (b"http://a?q", b"a", b"/?q"),
    (b"https://u:p@b/y", b"b", b"/y"),
    (b"ftp://c/z/w", b"c", b"/z/w"),
])
def test_absolute_form_gives_its_authority_and_path(target, authority, path):
    assert split_absolute_form(target) == (authority, path)


@pytest.mark.parametrize("target", [b"/x#f", b"http://a/x#f", b"/x?q#"])
def test_a_fragment_is_refused(target):
    with pytest.raises(HeadError) as err:
        check_request_target(b"GET", target, b"1.1")
    assert err.value.status == 400


def test_singletons_are_fields_of_one_value_only():
    # Host and Content-Length are judged before (h11, check_head); list
    # fields (Accept, Cookie, ...) are joined as before.
    assert b"content-type" in SINGLETON_FIELDS and b"authorization" in SINGLETON_FIELDS
    assert not {b"accept", b"cookie", b"host", b"content-length"} & SINGLETON_FIELDS


def test_singleton_twice_differing_is_refused_and_equal_is_kept_once():
    def environ(headers):
        return build_environ({}, b"GET", b"/", b"1.1", headers, "127.0.0.1", 1)
    with pytest.raises(HeadError) as err:
        environ([(b"content-type", b"a"), (b"content-type", b"b")])
    assert err.value.status == 400
    env = environ([(b"content-type", b"a"), (b"content-type", b"a"), (b"accept", b"x"), (b"accept", b"y")])
    assert env["CONTENT_TYPE"] == "a" and env["HTTP_ACCEPT"] == "x, y"
