"""Response framing decisions (framing.py) against h11's own, rule by rule."""

import h11
import pytest

from mpmserver.http import framing


def h11_framing(method: bytes, version: bytes, code: int, headers: list, req_close: bool = False):
    """What h11 would put on the wire for this response."""
    c = h11.Connection(h11.SERVER)
    req_headers = [(b"host", b"x")] if version == b"1.1" else []
    if req_close:
        req_headers.append((b"connection", b"close"))
    head = b"%s / HTTP/%s\r\n" % (method, version) + b"".join(n + b": " + v + b"\r\n" for n, v in req_headers) + b"\r\n"
    c.receive_data(head)
    c.next_event()
    c.next_event()
    out = c.send(h11.Response(status_code=code, headers=headers)).lower()
    return out, c


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
@pytest.mark.parametrize("code", [200, 204, 304, 404])
@pytest.mark.parametrize("cl", [-1, 5])
@pytest.mark.parametrize("close", [False, True])
def test_framing_agrees_with_h11(method, version, code, cl, close):
    headers = [(b"content-length", b"%d" % cl)] if cl >= 0 else []
    out, c = h11_framing(method, version, code, headers, req_close=close)
    mode, extra, keep = framing.frame(code, cl, http11=version == b"1.1", head_request=method == b"HEAD", close=close)
    if method == b"HEAD" or code in (204, 304):
        assert mode == framing.NO_BODY
    elif cl >= 0:
        assert mode == framing.FIXED
    elif version == b"1.1":
        assert mode == framing.CHUNKED and b"transfer-encoding: chunked" in out  # h11 writes lower case
    else:
        assert mode == framing.UNTIL_CLOSE
    # h11 keeps the connection exactly when we do (it does not add the header for 1.0).
    h11_keep = c._cstate.keep_alive
    if mode != framing.UNTIL_CLOSE and method == b"GET" and code not in (204, 304):
        assert keep == h11_keep
    assert (b"Connection: close" in extra) == (not keep)
    if mode == framing.CHUNKED:
        assert extra.startswith(b"Transfer-Encoding: chunked\r\n")


def test_chunk_encoding():
    assert framing.chunk(b"hello") == b"5\r\nhello\r\n"
    assert framing.chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert framing.LAST_CHUNK == b"0\r\n\r\n"


@pytest.mark.parametrize("name", [b"bad name", b"", b"x:y", b"a\r\nb", b"\xff"])
def test_bad_names_refused(name):
    with pytest.raises(ValueError):
        framing.check_field(name, b"v")


@pytest.mark.parametrize("value", [b"a\r\nSet-Cookie: x", b"a\nb", b"a\rb", b"nul\x00", b"\x7f", b"\x01"])
def test_control_characters_in_values_refused(value):
    with pytest.raises(ValueError):
        framing.check_field(b"x-test", value)


def test_tab_and_obs_text_allowed():
    framing.check_field(b"x-test", b"a\tb \xe9")


def test_status_line_default_reason():
    assert framing.status_line(404, b"") == b"HTTP/1.1 404 Not Found\r\n"
    assert framing.status_line(200, b"Fine") == b"HTTP/1.1 200 Fine\r\n"


def test_reason_phrases_come_from_http_status():
    assert framing.reason_phrase(200) == b"OK" and framing.reason_phrase(503) == b"Service Unavailable"
    assert framing.reason_phrase(299) == b"" and framing.reason_phrase(299, b"Unknown") == b"Unknown"
    assert framing.status_line(299, b"") == b"HTTP/1.1 299 \r\n"


def test_server_line():
    from mpmserver import SERVER_SOFTWARE

    assert framing.SERVER_HEADER == SERVER_SOFTWARE.encode()
    assert framing.SERVER_LINE == b"Server: " + framing.SERVER_HEADER + b"\r\n"
