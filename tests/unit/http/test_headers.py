"""request.header_list(): h11's private _full_items, and the public fallback."""

from __future__ import annotations

import h11

from mpmserver.http.request import header_list

REQUEST = (b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Thing: A\r\nx-thing: b\r\n"
           b"Accept-Encoding: gzip\r\n\r\n")
EXPECTED = [(b"host", b"example.com"), (b"x-thing", b"A"), (b"x-thing", b"b"),
            (b"accept-encoding", b"gzip")]


def _headers() -> h11._headers.Headers:
    h = h11.Connection(h11.SERVER)
    h.receive_data(REQUEST)
    return h.next_event().headers


def test_h11_still_has_the_private_list_the_fast_path_reads():
    # Loud on purpose: if this fails, h11 changed its Headers; the server
    # still works (the fallback), but every request pays ~2 us more.
    # Measure list(headers) again and drop the private path or adapt it.
    full = _headers()._full_items
    assert [(name, value) for _, name, value in full] == EXPECTED


def test_the_fast_path_and_the_public_api_agree():
    headers = _headers()
    assert header_list(headers) == list(headers) == EXPECTED


class _PublicOnly(list):
    """An h11 Headers without _full_items: what a future h11 may give."""


class _OtherShape(list):
    _full_items = [(b"Host", b"host")]  # two-tuples: not what the fast path unpacks


def test_without_the_private_list_the_public_iteration_is_used():
    assert header_list(_PublicOnly(EXPECTED)) == EXPECTED
    assert header_list(_OtherShape(EXPECTED)) == EXPECTED
