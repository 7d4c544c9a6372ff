"""The generator's response framing: lengths, chunked, pipelined, errors."""

import pytest

from mpmserver.bench.framing import FramingError, ResponseParser


def feed_bytewise(parser, data):
    out = []
    for i in range(len(data)):
        out += parser.feed(data[i:i + 1])
    return out


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!"
CHUNKED = (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nHello\r\n8;ext=1\r\n, World!\r\n0\r\nX-Trailer: 1\r\n\r\n")


def test_content_length_response():
    assert ResponseParser().feed(OK) == [(200, False)]


def test_content_length_split_at_every_byte():
    p = ResponseParser()
    assert feed_bytewise(p, OK + OK) == [(200, False), (200, False)]
    assert not p.in_progress()


def test_chunked_with_extension_and_trailer():
    assert ResponseParser().feed(CHUNKED) == [(201, False)]
    assert feed_bytewise(ResponseParser(), CHUNKED * 2) == [(201, False)] * 2


def test_pipelined_responses_in_one_read():
    data = OK + CHUNKED + b"HTTP/1.1 204 No Content\r\n\r\n" + OK
    assert ResponseParser().feed(data) == [(200, False), (201, False), (204, False), (200, False)]


def test_large_body_is_skipped_across_reads():
    body = b"x" * 1_000_000
    p = ResponseParser()
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + body
    got = []
    for i in range(0, len(resp), 65536):
        got += p.feed(resp[i:i + 65536])
    assert got == [(200, False)]
    assert p.buf == b""   # the body was never kept


def test_connection_close_and_http10():
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n") == [(503, True)]
    assert ResponseParser().feed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == [(200, True)]
    assert ResponseParser().feed(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n") == [(200, False)]


def test_body_delimited_by_close_completes_at_eof():
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\n\r\nsome body") == []
    assert p.feed(b" more") == []
    assert p.eof() == [(200, True)]


def test_head_and_no_body_statuses():
    p = ResponseParser(expect_no_body=True)
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" * 2) == [(200, False)] * 2
    assert ResponseParser().feed(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n") == [(304, False)]


def test_eof_mid_response_is_an_error():
    p = ResponseParser()
    p.feed(OK[:-3])
    with pytest.raises(FramingError, match="middle of a response"):
        p.eof()
    assert ResponseParser().eof() == []


@pytest.mark.parametrize("bad", [
    b"HTTX/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
])
def test_malformed_responses_raise(bad):
    with pytest.raises(FramingError):
        ResponseParser().feed(bad)


def test_oversized_head_is_refused():
    with pytest.raises(FramingError, match="longer than"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000)
