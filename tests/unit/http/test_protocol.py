"""Request-head checks (mpmserver.http.protocol), alone and in front of h11."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmserver.http.errors import error_response
from mpmserver.http.protocol import (
    DROP_CONTENT_LENGTH,
    LIMIT_BLANK_LINES,
    MUST_CLOSE,
    HeadError,
    check_head,
    check_partial_head,
    check_request_target,
    split_head,
)

LRL, LRF, LRFS = 8190, 100, 8190  # Apache's defaults

BROWSER_HEAD = (
    b"GET /index.html?q=1 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)


def make_head(*fields: bytes, line: bytes = b"GET / HTTP/1.1") -> bytes:
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def check(head: bytes, lrl: int = LRL, lrf: int = LRF, lrfs: int = LRFS) -> int:
    return check_head(head, lrl, lrf, lrfs)


def refused(head: bytes, lrl: int = LRL, lrf: int = LRF, lrfs: int = LRFS) -> int:
    with pytest.raises(HeadError) as info:
        check_head(head, lrl, lrf, lrfs)
    assert info.value.reason
    return info.value.status


def h11_request(data: bytes) -> h11.Request:
    """What the worker does next: give the bytes to h11 and take the Request."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, h11.Request), event
    return event


def h11_refuses(data: bytes) -> bool:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return True
    assert isinstance(event, h11.Request), event
    return False


# -- finding the head -----------------------------------------------------------


def test_split_head_plain_complete_and_incomplete():
    assert split_head(BROWSER_HEAD + b"body") == (0, len(BROWSER_HEAD))
    assert split_head(BROWSER_HEAD[:-1]) == (0, -1)
    assert split_head(b"") == (0, -1)
    assert split_head(bytearray(BROWSER_HEAD)) == (0, len(BROWSER_HEAD))


@pytest.mark.parametrize("lead", [b"\r\n", b"\n", b"\r\n\r\n", b"\n\r\n\n"])
def test_split_head_skips_leading_empty_lines_that_h11_would_refuse(lead):
    buf = lead + BROWSER_HEAD
    assert h11_refuses(buf)  # h11: "no request line received"
    skip, end = split_head(buf)
    assert (skip, end) == (len(lead), len(buf))
    assert check(buf[skip:end]) == 0
    assert h11_request(buf[skip:]).target == b"/index.html?q=1"


def test_split_head_leading_empty_lines_limit():
    at_limit = b"\r\n" * LIMIT_BLANK_LINES + BROWSER_HEAD
    assert split_head(at_limit) == (2 * LIMIT_BLANK_LINES, len(at_limit))
    # One more: split_head stops skipping (it never raises, so callers need no
    # try around it) and the head it returns is refused.
    over = b"\r\n" * (LIMIT_BLANK_LINES + 1) + BROWSER_HEAD
    skip, end = split_head(over)
    assert skip == 2 * LIMIT_BLANK_LINES
    assert refused(over[skip:end]) == 400
    # Only empty lines so far: refused while the head is still arriving.
    for lead in (b"\r\n", b"\n"):
        buf = lead * (LIMIT_BLANK_LINES + 2)
        skip, end = split_head(buf)
        with pytest.raises(HeadError) as info:
            if end >= 0:
                check(buf[skip:end])
            check_partial_head(buf, LRL, LRF, LRFS, start=skip)
        assert info.value.status == 400


def test_split_head_leading_lone_cr_is_not_an_empty_line():
    skip, end = split_head(b"\r\n\r")
    assert (skip, end) == (2, -1)  # the CR may be the start of another CRLF
    skip, end = split_head(b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert skip == 0  # so the head starts with a bare CR, which check_head refuses
    assert refused(b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n") == 400


# -- what passes ----------------------------------------------------------------


def test_browser_head_passes_and_h11_parses_it():
    assert check(BROWSER_HEAD) == 0
    req = h11_request(BROWSER_HEAD)
    assert dict(req.headers)[b"user-agent"].startswith(b"Mozilla/5.0")


def test_http10_without_headers_passes():
    assert check(b"GET / HTTP/1.0\r\n\r\n") == 0


@pytest.mark.parametrize("value", [b"a\tb", b"caf\xc3\xa9", b"\x80\xff", b""])
def test_htab_and_obs_text_in_values_pass(value):
    head = make_head(b"Host: a", b"X-V: " + value)
    assert check(head) == 0
    assert h11_request(head)


def test_underscore_names_pass_for_the_wsgi_layer_to_drop():
    head = make_head(b"Host: a", b"X_Forwarded_For: 1.2.3.4")
    assert check(head) == 0
    assert (b"x_forwarded_for", b"1.2.3.4") in list(h11_request(head).headers)


def test_names_merely_containing_transfer_encoding_are_not_framing():
    head = make_head(b"Host: a", b"X-Transfer-Encoding: gzip", b"X-Note: transfer-encoding: gzip")
    assert check(head) == 0


# -- limits -----------------------------------------------------------------------


def test_request_line_exactly_at_limit_passes_one_over_is_414():
    line = b"GET /" + b"a" * 30 + b" HTTP/1.1"
    head = make_head(b"Host: a", line=line)
    assert check(head, lrl=len(line)) == 0
    assert refused(head, lrl=len(line) - 1) == 414


def test_long_request_line_in_one_piece_h11_takes_it_we_refuse_414():
    # h11 issue 182: max_incomplete_event_size is not applied to a complete event.
    head = make_head(b"Host: a", line=b"GET /" + b"a" * 100_000 + b" HTTP/1.1")
    assert len(h11_request(head).target) == 100_001
    assert refused(head) == 414


def test_field_line_exactly_at_limit_passes_one_over_is_431():
    field = b"X-Big: " + b"v" * 50
    head = make_head(b"Host: a", field)
    assert check(head, lrfs=len(field)) == 0
    assert refused(head, lrfs=len(field) - 1) == 431


def test_field_count_exactly_at_limit_passes_one_over_is_431():
    fields = [b"Host: a"] + [b"X-%d: v" % i for i in range(9)]
    assert check(make_head(*fields), lrf=10) == 0
    assert refused(make_head(*fields, b"X-Last: v"), lrf=10) == 431


def test_header_block_over_limits_h11_takes_it_we_refuse_431():
    head = make_head(b"Host: a", *[b"X-%d: v" % i for i in range(LRF)])
    assert h11_request(head)
    assert refused(head) == 431
    head = make_head(b"Host: a", b"Cookie: " + b"c" * 20_000)
    assert h11_request(head)
    assert refused(head) == 431


def test_first_problem_in_reading_order_wins():
    # An over-long request line is refused with 414 even if later lines are bad.
    head = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nX: \x01\r\n\r\n"
    assert refused(head, lrl=50) == 414
    # An over-long field line is judged before its content.
    assert refused(make_head(b"Host: a", b"X: \x01" + b"v" * 100), lrfs=50) == 431


# -- line endings, controls, folding -------------------------------------------


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\n\r\n",
])
def test_bare_lf_is_400_although_h11_accepts_it(head):
    if head.endswith(b"\n\n"):
        assert h11_request(head)  # h11 takes LF-only line endings
    assert refused(head) == 400


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
    b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\n\r\r\n",
])
def test_bare_cr_is_400(head):
    assert refused(head) == 400


CONTROLS = [b for b in range(0x20) if b not in (0x09, 0x0A, 0x0D)] + [0x7F]


@pytest.mark.parametrize("byte", CONTROLS)
def test_control_characters_are_400_in_values_names_and_request_line(byte):
    c = bytes([byte])
    assert refused(make_head(b"Host: a", b"X-V: a" + c + b"b")) == 400
    assert refused(make_head(b"Host: a", b"X-" + c + b"V: ab")) == 400
    assert refused(make_head(b"Host: a", line=b"GET /" + c + b" HTTP/1.1")) == 400


@pytest.mark.parametrize("byte", [0x01, 0x08, 0x0E, 0x1B, 0x1F, 0x7F])
def test_controls_in_values_that_h11_lets_through(byte):
    head = make_head(b"Host: a", b"X-V: a" + bytes([byte]) + b"b")
    assert h11_request(head)
    assert refused(head) == 400


@pytest.mark.parametrize("fold", [b" ", b"\t"])
def test_obs_fold_is_400_although_h11_unfolds_it(fold):
    head = make_head(b"Host: a", b"X-V: one", fold + b"two")
    assert (b"x-v", b"one two") in list(h11_request(head).headers)
    assert refused(head) == 400


# -- Transfer-Encoding --------------------------------------------------------------


@pytest.mark.parametrize("value", [b"chunked", b"Chunked", b" CHUNKED ", b"\tchunked\t", b"chunked "])
def test_transfer_encoding_chunked_any_case_and_whitespace_passes(value):
    head = make_head(b"Host: a", b"Transfer-Encoding:" + value, line=b"POST / HTTP/1.1")
    assert check(head) == 0
    assert h11_request(head)


@pytest.mark.parametrize("value", [b"gzip", b"gzip, chunked", b"chunked, chunked", b"", b"identity",
                                   b"chunked;x=1", b"chunked,", b"chunk ed"])
def test_other_transfer_encodings_are_501(value):
    head = make_head(b"Host: a", b"Transfer-Encoding: " + value, line=b"POST / HTTP/1.1")
    assert refused(head) == 501


def test_two_transfer_encoding_headers_are_501():
    head = make_head(b"Host: a", b"Transfer-Encoding: chunked", b"transfer-encoding: chunked",
                     line=b"POST / HTTP/1.1")
    assert refused(head) == 501


@pytest.mark.parametrize("fields", [
    (b"Transfer-Encoding: chunked", b"Content-Length: 3"),
    (b"content-length: 3", b"TRANSFER-ENCODING: chunked"),
])
def test_transfer_encoding_with_content_length_must_close_and_drop_length(fields):
    head = make_head(b"Host: a", *fields, line=b"POST / HTTP/1.1")
    flags = check(head)
    assert flags == MUST_CLOSE | DROP_CONTENT_LENGTH
    # h11 frames the body by Transfer-Encoding: the chunked body is read whole
    # and the bytes after it are the next request, not part of this body.
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head + b"5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    assert conn.next_event().data == b"hello"
    assert isinstance(conn.next_event(), h11.EndOfMessage)


def test_transfer_encoding_in_http10_must_close():
    head = make_head(b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.0")
    assert check(head) & MUST_CLOSE
    assert not check(head) & DROP_CONTENT_LENGTH


def test_obs_fold_after_transfer_encoding_is_still_400():
    head = make_head(b"Host: a", b"Transfer-Encoding: chunked", b"X: a", b" folded", line=b"POST / HTTP/1.1")
    assert refused(head) == 400


# -- what passes check_head and h11 then refuses: the pair is safe -------------


@pytest.mark.parametrize("head", [
    make_head(b"Host : a"),                                   # space before colon
    make_head(b": a", b"Host: a"),                            # empty name
    make_head(b"Ho\xffst: a"),                                # non-token name
    make_head(b"Host: a", b"Content-Length: +1", line=b"POST / HTTP/1.1"),
    make_head(b"Host: a", line=b"GET /\ta HTTP/1.1"),         # HTAB in the target
    make_head(b"Host: a", line=b"GET  / HTTP/1.1"),           # two spaces
    make_head(b"Host: a", line=b"GET /\xff HTTP/1.1"),
    make_head(line=b"GET / HTTP/1.1"),                        # no Host in HTTP/1.1
])
def test_heads_check_head_leaves_to_h11_are_refused_by_h11(head):
    assert check(head) == 0
    assert h11_refuses(head)


# -- what h11 accepts and the strict reading refuses (request smuggling) ---------


@pytest.mark.parametrize("head", [
    make_head(b"Host: a", b"Content-Length: 1", b"Content-Length: 2", line=b"POST / HTTP/1.1"),
    make_head(b"Host: a", b"Content-Length: 5", b"content-length: 5", line=b"POST / HTTP/1.1"),
    make_head(b"Host: a", b"Content-Length: 5, 5", line=b"POST / HTTP/1.1"),
    make_head(b"Host: a", b"Content-Length: 5,5", b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.1"),
])
def test_content_length_lists_h11_accepts_are_refused_here(head):
    assert refused(head) == 400


def target_status(line: bytes) -> int:
    """What a request line gets once h11 has parsed it: 0 (passes) or the refusal."""
    head = make_head(b"Host: a", line=line)
    assert check(head) == 0
    c = h11.Connection(h11.SERVER)
    c.receive_data(head)
    req = c.next_event()
    try:
        check_request_target(req.method, req.target, req.http_version)
    except HeadError as err:
        return err.status
    return 0


@pytest.mark.parametrize("line,status", [
    (b"GET foo/bar HTTP/1.1", 400),             # no form at all
    (b"GET example.com:80 HTTP/1.1", 400),      # authority-form without CONNECT
    (b"GET * HTTP/1.1", 400),                   # asterisk-form without OPTIONS
    (b"CONNECT /x HTTP/1.1", 400),              # CONNECT needs host:port
    (b"GET / HTTP/2.0", 505),
    (b"GET / HTTP/3.1", 505),
    (b"GET /a?b HTTP/1.1", 0),
    (b"OPTIONS * HTTP/1.1", 0),
    (b"CONNECT example.com:443 HTTP/1.1", 0),
    (b"CONNECT [::1]:443 HTTP/1.1", 0),
    (b"GET http://example.com/x HTTP/1.1", 0),
    (b"GET / HTTP/1.0", 0),
    (b"COPY /a HTTP/1.1", 0),
])
def test_request_target_forms_h11_accepts_are_judged_here(line, status):
    assert target_status(line) == status


# -- incomplete heads -----------------------------------------------------------------


def test_partial_valid_head_never_refused_byte_by_byte():
    head = make_head(b"Host: a", b"Transfer-Encoding: chunked", b"X-V: a\tb", line=b"POST / HTTP/1.1")
    for i in range(len(head) - 1):
        check_partial_head(head[:i], LRL, LRF, LRFS)


def test_partial_long_request_line_refused_as_soon_as_over_limit():
    limit = 1000
    data = b"GET /" + b"a" * (1 << 20)
    check_partial_head(data[:limit], limit, LRF, LRFS)
    check_partial_head(data[:limit] + b"\r", limit, LRF, LRFS)  # CR awaiting LF
    with pytest.raises(HeadError) as info:
        check_partial_head(data[:limit + 1], limit, LRF, LRFS)
    assert info.value.status == 414
    with pytest.raises(HeadError) as info:
        check_partial_head(data, limit, LRF, LRFS)  # 1 MB, still no CRLF
    assert info.value.status == 414


def test_partial_long_header_line_is_431():
    data = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: " + b"c" * 100
    check_partial_head(data[:-60], LRL, LRF, 50)
    with pytest.raises(HeadError) as info:
        check_partial_head(data, LRL, LRF, 50)
    assert info.value.status == 431


def test_partial_too_many_fields_is_431():
    data = b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 10
    check_partial_head(data, LRL, 10, LRFS)
    with pytest.raises(HeadError) as info:
        check_partial_head(data + b"X: v\r\n", LRL, 10, LRFS)
    assert info.value.status == 431


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost",          # bare LF: never completes as a CRLF head
    b"GET / HTTP/1.1\r\nHost: a\x01",
    b"GET /\x00",
    b"GET / HTTP/1.1\r\nHost: a\r\n folded",
    b"GET / HTTP/1.1\r\nHost: a\rb",
])
def test_partial_malformed_is_400_before_the_head_ends(data):
    with pytest.raises(HeadError) as info:
        check_partial_head(data, LRL, LRF, LRFS)
    assert info.value.status == 400


def test_partial_start_skips_leading_empty_lines():
    buf = b"\r\n\r\nGET /" + b"a" * 100
    skip, end = split_head(buf)
    assert end == -1
    check_partial_head(buf, 200, LRF, LRFS, start=skip)
    with pytest.raises(HeadError) as info:
        check_partial_head(buf, 50, LRF, LRFS, start=skip)
    assert info.value.status == 414


# -- properties -------------------------------------------------------------------------

_token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~",
                 min_size=1, max_size=12).map(str.encode)
_value = st.binary(max_size=30)
_fields = st.lists(st.tuples(_token, _value), max_size=8)


@settings(max_examples=300, deadline=None, database=None)
@given(fields=_fields, target=st.binary(min_size=1, max_size=20))
def test_whatever_passes_check_head_reaches_the_app_clean(fields, target):
    head = make_head(*[n + b": " + v for n, v in fields], line=b"GET /" + target + b" HTTP/1.1")
    try:
        flags = check(head, lrl=40, lrf=6, lrfs=30)
    except HeadError as err:
        assert err.status in (400, 414, 431, 501)
        return
    assert flags in (0, MUST_CLOSE, MUST_CLOSE | DROP_CONTENT_LENGTH)
    # Every prefix of an accepted head is accepted while it is arriving.
    for i in range(0, len(head) - 1, 7):
        check_partial_head(head[:i], 40, 6, 30)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head)
    try:
        req = conn.next_event()
    except h11.RemoteProtocolError:
        return
    assert len(req.target) <= 40
    assert len(req.headers) <= 6
    for _, value in req.headers:
        assert not any(b < 0x20 and b != 0x09 or b == 0x7F for b in value)


@settings(max_examples=200, deadline=None, database=None)
@given(noise=st.binary(min_size=1, max_size=60))
def test_arbitrary_bytes_give_head_error_or_pass_never_other_exceptions(noise):
    head = b"GET / HTTP/1.1\r\n" + noise + b"\r\n\r\n"
    try:
        check(head, lrl=40, lrf=6, lrfs=30)
    except HeadError as err:
        assert err.status in (400, 414, 431, 501)
    try:
        check_partial_head(head[:-2], 40, 6, 30)
    except HeadError as err:
        assert err.status in (400, 414, 431)


# -- error responses ------------------------------------------------------------------


DATE = b"Mon, 23 Nov 2026 15:00:00 GMT"


@pytest.mark.parametrize("status,phrase", [
    (400, b"Bad Request"), (408, b"Request Timeout"), (414, b"Request-URI Too Long"),
    (431, b"Request Header Fields Too Large"), (501, b"Not Implemented"),
])
def test_error_response_is_a_complete_closing_http11_response(status, phrase):
    data = error_response(status, "header line too long", b"mpmserver/0.1.0", DATE)
    assert data.startswith(b"HTTP/1.1 %d %s\r\n" % (status, phrase))
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    resp = client.next_event()
    assert resp.status_code == status
    headers = dict(resp.headers)
    assert headers[b"date"] == DATE
    assert headers[b"server"] == b"mpmserver/0.1.0"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"connection"] == b"close"
    body = client.next_event().data
    assert body == b"%d %s\nheader line too long\n" % (status, phrase)
    assert int(headers[b"content-length"]) == len(body)
    assert isinstance(client.next_event(), h11.EndOfMessage)


def test_error_response_uses_the_date_given_each_time():
    one = error_response(400, "x", b"s", b"Mon, 23 Nov 2026 15:00:00 GMT")
    two = error_response(400, "x", b"s", b"Mon, 23 Nov 2026 15:00:01 GMT")
    assert one != two and one.replace(b"00 GMT", b"01 GMT") == two


def test_head_error_carries_status_and_reason():
    err = HeadError(431, "too many header lines")
    assert (err.status, err.reason) == (431, "too many header lines")
    assert str(err) == "431 too many header lines"


@settings(max_examples=300, deadline=None, database=None)
@given(buf=st.binary(max_size=40).map(lambda b: b.replace(b"x", b"\r\n")))
def test_split_head_never_raises_and_stays_in_bounds(buf):
    skip, end = split_head(buf)
    assert 0 <= skip <= len(buf)
    assert buf[:skip].replace(b"\r\n", b"").replace(b"\n", b"") == b""
    assert end == -1 or (skip < end <= len(buf) and buf[end - 4:end] == b"\r\n\r\n")


def test_limit_request_fields_zero_means_unlimited():
    from mpmserver.http import protocol

    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)) + b"\r\n"
    assert protocol.check_head(head, 8190, 0, 8190) == 0
    protocol.check_partial_head(head[:-2], 8190, 0, 8190)
    with pytest.raises(protocol.HeadError) as err:
        protocol.check_head(head, 8190, 299, 8190)
    assert err.value.status == 431


@pytest.mark.parametrize("lines, expected", [
    (b"Content-Length: 10240\r\n", 10240),
    (b"content-length:5 \t\r\n", 5),
    (b"CONTENT-LENGTH: 7\r\n", 7),
    (b"Content-Length: 12abc\r\n", 0),  # h11 refuses it; nothing to wait for
    (b"Transfer-Encoding: chunked\r\n", -1),
    (b"Content-Length: 10\r\nTransfer-Encoding: Chunked \r\n", -1),  # chunked frames it, in either order
    (b"Transfer-Encoding: chunked\r\nContent-Length: 10\r\n", -1),
    (b"Content-Length: 5\r\nExpect: 100-continue\r\n", -2),  # the client waits for 100 first
    (b"Expect: 100-Continue\r\nTransfer-Encoding: chunked\r\n", -2),
    (b"X-Content-Length: 5\r\n", 0),
    (b"", 0),
])
def test_declared_body(lines, expected):
    from mpmserver.http.protocol import declared_body

    head = b"POST / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n"
    assert declared_body(head) == expected
    if expected == -2:  # the length all the same, when the listener answers the expectation itself
        assert declared_body(head, expect=False) in (5, -1)
