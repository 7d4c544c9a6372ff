"""The answer to a request for a file (modules/static_files.py) and its
cache headers (modules/expires.py), without a server."""

import email.utils

import pytest

from mpmserver.modules import expires, static_files
from mpmserver.modules.static_files import FileFacts, decide, request_fields

MTIME = 1_700_000_000.0
FACTS = FileFacts(1000, MTIME, b'"3e8-abc"', email.utils.formatdate(MTIME, usegmt=True).encode())
COMMON = [(b"Content-Type", b"text/css; charset=utf-8")]


def answer(*lines: bytes, head_only=False):
    head = b"GET /static/x.css HTTP/1.1\r\nHost: t\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    return decide(head_only, request_fields(head), FACTS, COMMON)


def headers(d):
    return dict(d.headers)


def test_a_plain_get_is_the_whole_file():
    d = answer()
    assert (d.status, d.offset, d.count) == (200, 0, 1000)
    h = headers(d)
    assert h[b"Content-Length"] == b"1000" and h[b"Accept-Ranges"] == b"bytes" and h[b"ETag"] == FACTS.etag
    assert h[b"Last-Modified"] == FACTS.last_modified and h[b"Content-Type"] == COMMON[0][1]


def test_head_gets_the_headers_and_no_body():
    d = answer(head_only=True)
    assert (d.status, d.count, headers(d)[b"Content-Length"]) == (200, 0, b"1000")
    assert answer(b"Range: bytes=0-9", head_only=True).status == 200  # Range is for GET


@pytest.mark.parametrize("line", [b'If-None-Match: "3e8-abc"', b'If-None-Match: W/"3e8-abc"', b"If-None-Match: *",
                                  b'If-None-Match: "x", "3e8-abc"',
                                  b"If-Modified-Since: " + FACTS.last_modified,
                                  b"If-Modified-Since: " + email.utils.formatdate(MTIME + 60, usegmt=True).encode()])
def test_a_matching_validator_is_304(line):
    d = answer(line)
    assert (d.status, d.count) == (304, 0)
    assert headers(d)[b"ETag"] == FACTS.etag and b"Content-Length" not in headers(d)


@pytest.mark.parametrize("line", [b'If-None-Match: "other"',
                                  b"If-Modified-Since: " + email.utils.formatdate(MTIME - 1, usegmt=True).encode(),
                                  b"If-Modified-Since: yesterday"])
def test_a_validator_that_does_not_match_is_200(line):
    assert answer(line).status == 200


def test_if_none_match_wins_over_if_modified_since():
    assert answer(b'If-None-Match: "other"', b"If-Modified-Since: " + FACTS.last_modified).status == 200


@pytest.mark.parametrize("spec, first, last", [(b"bytes=0-99", 0, 99), (b"bytes=900-", 900, 999),
                                               (b"bytes=-100", 900, 999), (b"bytes=990-5000", 990, 999),
                                               (b"bytes=-5000", 0, 999), (b"BYTES = 5-5", 5, 5)])
def test_a_single_range_is_206(spec, first, last):
    d = answer(b"Range: " + spec)
    assert (d.status, d.offset, d.count) == (206, first, last - first + 1)
    assert headers(d)[b"Content-Range"] == b"bytes %d-%d/1000" % (first, last)
    assert headers(d)[b"Content-Length"] == b"%d" % (last - first + 1)


@pytest.mark.parametrize("spec", [b"bytes=1000-", b"bytes=5000-6000", b"bytes=-0"])
def test_a_range_past_the_end_is_416(spec):
    d = answer(b"Range: " + spec)
    assert (d.status, d.count, headers(d)[b"Content-Range"]) == (416, 0, b"bytes */1000")


@pytest.mark.parametrize("spec", [b"bytes=0-1,5-6", b"items=0-5", b"bytes=9-2", b"bytes=x-"])
def test_several_ranges_or_a_malformed_one_is_the_whole_file(spec):
    assert answer(b"Range: " + spec).status == 200


def test_if_range_must_match_for_the_range_to_apply():
    assert answer(b"Range: bytes=0-9", b'If-Range: "3e8-abc"').status == 206
    assert answer(b"Range: bytes=0-9", b"If-Range: " + FACTS.last_modified).status == 206
    assert answer(b"Range: bytes=0-9", b'If-Range: "old"').status == 200
    assert answer(b"Range: bytes=0-9", b'If-Range: W/"3e8-abc"').status == 200  # weak: never a match


@pytest.mark.parametrize("accept, chosen", [(b"gzip, deflate, br", 0), (b"gzip", 1), (b"br;q=0, gzip", 1),
                                            (b"identity", -1), (b"*", 0), (b"*, br;q=0", 1), (None, -1),
                                            (b"gzip;q=0", -1)])
def test_the_precompressed_sibling_follows_accept_encoding(accept, chosen):
    assert static_files.choose_encoding(accept, (b"br", b"gzip")) == chosen


@pytest.mark.parametrize("name, kind", [("a.css", b"text/css; charset=utf-8"),
                                        ("a.js", b"text/javascript; charset=utf-8"),
                                        ("f.woff2", b"font/woff2"), ("i.svg", b"image/svg+xml; charset=utf-8"),
                                        ("p.PNG", b"image/png"), ("x.tar", b"application/x-tar"),
                                        ("noext", b"application/octet-stream"), ("d.json", b"application/json; charset=utf-8")])
def test_content_types(name, kind):
    assert static_files.content_type(name) == kind


def test_request_fields_are_read_case_insensitively_and_joined():
    f = request_fields(b"GET / HTTP/1.1\r\nhOsT: t\r\nAccept-Encoding: gzip\r\naccept-encoding: br\r\n\r\n")
    assert f == {b"host": b"t", b"accept-encoding": b"gzip, br"}


# -- mod_expires ---------------------------------------------------------------------

def fmt(t):
    return email.utils.formatdate(t, usegmt=True).encode()


@pytest.mark.parametrize("spec, expiry", [("access plus 1 year", expires.Expiry(False, 31536000)),
                                          ("now plus 1 month 2 days", expires.Expiry(False, 2592000 + 172800)),
                                          ("modification plus 1 hour", expires.Expiry(True, 3600)),
                                          ("access 30 seconds", expires.Expiry(False, 30)),
                                          ("A600", expires.Expiry(False, 600)), ("M86400", expires.Expiry(True, 86400))])
def test_expires_default_reads_mod_expires_syntax(spec, expiry):
    assert expires.parse_spec(spec) == expiry


@pytest.mark.parametrize("spec", ["later plus 1 day", "access plus 1 fortnight", "access plus day", "access plus"])
def test_a_bad_expires_spec_says_why(spec):
    with pytest.raises(ValueError):
        expires.parse_spec(spec)


def test_cache_headers():
    now = MTIME + 100
    assert expires.cache_headers(None, False, MTIME, now, fmt) == []
    assert expires.cache_headers(expires.Expiry(False, 3600), False, MTIME, now, fmt) == [
        (b"Cache-Control", b"max-age=3600"), (b"Expires", fmt(now + 3600))]
    assert expires.cache_headers(expires.Expiry(True, 60), False, MTIME, now, fmt) == [
        (b"Cache-Control", b"max-age=0"), (b"Expires", fmt(MTIME + 60))]
    assert expires.cache_headers(None, True, MTIME, now, fmt)[0] == (b"Cache-Control", expires.IMMUTABLE)


@pytest.mark.parametrize("name, hashed", [(b"/s/css/base.0123456789ab.css", True), (b"/s/app.deadbeef0000.js.gz", True),
                                          (b"/s/css/base.css", False), (b"/s/x.0123456789.css", False),
                                          (b"/s/x.0123456789AB.css", False)])
def test_hashed_names_are_djangos(name, hashed):
    assert expires.is_hashed(name) is hashed
