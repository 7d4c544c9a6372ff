"""PROXY protocol v1/v2 parsing (mpmserver/modules/proxy_protocol.py): pure, no sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmserver.modules import proxy_protocol as pp
from mpmserver.modules.proxy_protocol import ProxyProtocolError, parse

SIG = pp.V2_SIGNATURE


# -- v1 ---------------------------------------------------------------------------------------

def test_v1_tcp4_every_field():
    buf = b"PROXY TCP4 198.51.100.22 203.0.113.7 35646 80\r\nGET / HTTP/1.1\r\n"
    header, used = parse(buf)
    assert header == pp.ProxyHeader(1, pp.PROXY, "TCP4", "198.51.100.22", "203.0.113.7", 35646, 80)
    assert buf[used:] == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6():
    header, used = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n")
    assert (header.family, header.src_addr, header.dst_addr, header.src_port, header.dst_port) == \
        ("TCP6", "2001:db8::1", "2001:db8::2", 4711, 443)


def test_v1_unknown_ignores_the_rest_of_the_line():
    header, used = parse(b"PROXY UNKNOWN ffff::1 whatever\r\nX")
    assert header.family == "UNKNOWN" and header.src_addr is None and used == len(b"PROXY UNKNOWN ffff::1 whatever\r\n")
    assert parse(b"PROXY UNKNOWN\r\n")[0].family == "UNKNOWN"


def test_v1_longest_line_is_accepted():
    line = (b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
            b"65535 65535\r\n")
    assert len(line) == pp.V1_MAX
    assert parse(line)[1] == pp.V1_MAX
    tcp6 = line.replace(b"UNKNOWN", b"TCP6")
    assert parse(tcp6)[1] == len(tcp6)
    with pytest.raises(ProxyProtocolError):
        parse(line.replace(b"UNKNOWN", b"UNKNOWN ").replace(b"\r\n", b"") + b"\r\n")


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",                # LF only
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",                # a port missing
    b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",             # two spaces
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",            # a field too many
    b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",          # v6 address in TCP4
    b"PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n",          # v4 address in TCP6
    b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",          # port out of range
    b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",            # leading zero
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n",           # not ASCII
    b"PROXY\r\n",
    b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
])
def test_v1_malformed_lines_are_refused(line):
    with pytest.raises(ProxyProtocolError):
        parse(line)


def test_v1_without_crlf_within_107_bytes_is_refused():
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        parse(b"PROXY TCP4 " + b"1" * 120)
    # Below the limit it is only incomplete.
    assert parse(b"PROXY TCP4 " + b"1" * 90) == (None, 0)


@pytest.mark.parametrize("start", [b"GET / HTTP/1.1\r\n", b"X", b"PRO\x00", b"\r\n\r\n\x01", b"\x16\x03\x01"])
def test_anything_else_first_is_refused_at_once(start):
    with pytest.raises(ProxyProtocolError, match="did not start with a PROXY protocol header"):
        parse(start)


def test_empty_and_prefixes_need_more():
    assert parse(b"") == (None, 0)
    assert parse(b"P") == (None, 0)
    assert parse(b"PROXY TCP4 1.2") == (None, 0)
    assert parse(SIG[:5]) == (None, 0)


# -- v2 ---------------------------------------------------------------------------------------

def test_v2_tcp4_every_field_and_what_follows():
    raw = pp.v2_header("198.51.100.22", "203.0.113.7", 35646, 80) + b"GET /"
    header, used = parse(raw)
    assert header == pp.ProxyHeader(2, pp.PROXY, "TCP4", "198.51.100.22", "203.0.113.7", 35646, 80)
    assert raw[used:] == b"GET /"


def test_v2_tcp6():
    header, used = parse(pp.v2_header("2001:db8::1", "2001:db8::2", 4711, 8443))
    assert (header.family, header.src_addr, header.dst_addr, header.src_port, header.dst_port) == \
        ("TCP6", "2001:db8::1", "2001:db8::2", 4711, 8443)
    assert used == 16 + 36


def test_v2_local_is_a_health_check_with_no_address():
    header, used = parse(pp.v2_header(local=True) + b"rest")
    assert header.command == pp.LOCAL and header.src_addr is None and used == 16
    # LOCAL with an address block: skipped whole.
    raw = SIG + bytes([0x20, 0x11]) + (12).to_bytes(2, "big") + bytes(12)
    assert parse(raw) == (pp.ProxyHeader(2, pp.LOCAL, "UNSPEC"), 28)


def test_v2_tlvs_are_walked_and_skipped():
    tlvs = bytes([0x01]) + (2).to_bytes(2, "big") + b"h2" + bytes([0x05]) + (4).to_bytes(2, "big") + b"uniq"
    header, used = parse(pp.v2_header("10.0.0.1", "10.0.0.2", 1, 2, tlvs=tlvs))
    assert header.tlvs == ((0x01, b"h2"), (0x05, b"uniq"))
    assert used == 16 + 12 + len(tlvs)


@pytest.mark.parametrize("tlvs", [b"\x01", b"\x01\x00", b"\x01\x00\x05abc"])
def test_v2_truncated_tlvs_are_refused(tlvs):
    with pytest.raises(ProxyProtocolError, match="TLV"):
        parse(pp.v2_header("10.0.0.1", "10.0.0.2", 1, 2, tlvs=tlvs))


def test_v2_unix_and_unspec_keep_the_peer():
    raw = SIG + bytes([0x21, 0x31]) + (216).to_bytes(2, "big") + b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0")
    header, used = parse(raw)
    assert (header.family, header.src_addr, used) == ("UNIX", None, 16 + 216)
    header, used = parse(SIG + bytes([0x21, 0x00, 0, 0]))
    assert (header.command, header.family, header.src_addr) == (pp.PROXY, "UNSPEC", None)


@pytest.mark.parametrize("ver_cmd, fam, why", [
    (0x11, 0x11, "version 1"),
    (0x31, 0x11, "version 3"),
    (0x22, 0x11, "unknown command"),
    (0x21, 0x12, "datagram"),
    (0x21, 0x22, "datagram"),
    (0x21, 0x41, "unknown address family"),
])
def test_v2_bad_version_command_family(ver_cmd, fam, why):
    raw = SIG + bytes([ver_cmd, fam]) + (12).to_bytes(2, "big") + bytes(12)
    with pytest.raises(ProxyProtocolError, match=why):
        parse(raw)


def test_v2_address_block_too_short_is_refused():
    raw = SIG + bytes([0x21, 0x21]) + (12).to_bytes(2, "big") + bytes(12)
    with pytest.raises(ProxyProtocolError, match="needs 36"):
        parse(raw)


def test_v2_oversized_is_refused_before_reading_it():
    raw = SIG + bytes([0x21, 0x11]) + (0xFFFF).to_bytes(2, "big")
    with pytest.raises(ProxyProtocolError, match="over the limit"):
        parse(raw)
    # At the limit: just incomplete until it is all there.
    ok = SIG + bytes([0x21, 0x11]) + (pp.MAX_V2_SIZE - 16).to_bytes(2, "big")
    assert parse(ok) == (None, 0)


def test_v2_truncated_needs_more():
    raw = pp.v2_header("10.0.0.1", "10.0.0.2", 1, 2)
    for n in range(len(raw)):
        assert parse(raw[:n]) == (None, 0), n


# -- split reads, and anything at all --------------------------------------------------------

def _feed(raw: bytes, cuts: list[int]):
    """Parse as the listener does: the buffer grows read by read."""
    buf = b""
    pos = 0
    for cut in sorted(set(cuts)) + [len(raw)]:
        buf += raw[pos:cut]
        pos = cut
        header, used = parse(buf)
        if header is not None:
            return header, buf[used:] + raw[pos:]
    return None, b""


@settings(max_examples=200, deadline=None)
@given(v4=st.booleans(), sport=st.integers(0, 65535), dport=st.integers(0, 65535),
       v2=st.booleans(), data=st.data())
def test_split_reads_give_the_same_header(v4, sport, dport, v2, data):
    if v4:
        src, dst = "192.0.2.1", "198.51.100.2"
    else:
        src, dst = "2001:db8::a", "2001:db8::b"
    raw = (pp.v2_header(src, dst, sport, dport) if v2 else pp.v1_line(src, dst, sport, dport)) + b"GET / "
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    header, rest = _feed(raw, cuts)
    assert (header.src_addr, header.dst_addr, header.src_port, header.dst_port) == (src, dst, sport, dport)
    assert rest == b"GET / "


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes(raw):
    try:
        header, used = parse(raw)
    except ProxyProtocolError:
        return
    assert 0 <= used <= len(raw)
    if header is None:
        assert used == 0
        assert len(raw) < pp.MAX_V2_SIZE


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=64), st.integers(0, 0xFF), st.integers(0, 0xFF))
def test_v2_with_any_body_never_crashes(body, ver_cmd, fam):
    raw = SIG + bytes([ver_cmd, fam]) + struct.pack("!H", len(body)) + body
    try:
        header, used = parse(raw)
    except ProxyProtocolError:
        return
    assert header is not None and used == len(raw)
