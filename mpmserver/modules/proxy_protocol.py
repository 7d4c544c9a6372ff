"""The PROXY protocol, versions 1 and 2 (HAProxy's spec), as a pure parser.

A proxy that speaks it (HAProxy's ``send-proxy`` / ``send-proxy-v2``, most
cloud load balancers) writes one header before the first byte of the client's
data, naming the client's address. `parse()` looks at the start of what a
connection has sent so far: it says "need more" until the whole header is
there (so it works however the bytes are split across reads), returns what the
header says and how many bytes it took, or raises ProxyProtocolError as soon
as the bytes cannot become a valid header. Sizes are bounded: a v1 line is at
most 107 bytes, a v2 header at most MAX_V2_SIZE.

The listener calls it (RemoteIPProxyProtocol On); nothing here touches a socket.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included (spec 2.1)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = 16  # signature, version/command, family/protocol, length
# The spec asks receivers to take at least 536 bytes; TLVs (ALPN, authority,
# unique id, SSL details) fit well within this.
MAX_V2_SIZE = 4096

LOCAL = "LOCAL"
PROXY = "PROXY"

# v2 family/protocol byte -> (family, address block size, stream?)
_V2_FAMILIES = {
    0x00: ("UNSPEC", 0, True),
    0x11: ("TCP4", 12, True),
    0x12: ("UDP4", 12, False),
    0x21: ("TCP6", 36, True),
    0x22: ("UDP6", 36, False),
    0x31: ("UNIX", 216, True),
    0x32: ("UNIX", 216, False),
}
_V4_ADDRS = struct.Struct("!4s4sHH")
_V6_ADDRS = struct.Struct("!16s16sHH")


class ProxyProtocolError(ValueError):
    """The bytes are not (and cannot become) a valid PROXY header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a PROXY header says.

    ``command`` is PROXY (addresses are the client's) or LOCAL (the proxy's own
    connection, e.g. a health check: keep the peer's address). A v1 ``UNKNOWN``
    line, a v2 UNSPEC or UNIX header carry no usable IP address: ``src_addr``
    is None and the connection keeps its peer's address.
    """

    version: int
    command: str
    family: str  # TCP4, TCP6, UNIX, UNKNOWN/UNSPEC
    src_addr: str | None = None
    dst_addr: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()


def parse(buf: bytes) -> tuple[ProxyHeader | None, int]:
    """``(header, bytes used)`` once ``buf`` starts with a whole header,
    ``(None, 0)`` while it is a valid beginning of one; ProxyProtocolError otherwise."""
    if buf[:1] == b"P":
        return _parse_v1(buf)
    if buf[:1] == b"\r":
        return _parse_v2(buf)
    if not buf:
        return None, 0
    raise ProxyProtocolError("the connection did not start with a PROXY protocol header")


def _parse_v1(buf: bytes) -> tuple[ProxyHeader | None, int]:
    n = min(len(buf), len(V1_PREFIX))
    if buf[:n] != V1_PREFIX[:n]:
        raise ProxyProtocolError("the connection did not start with a PROXY protocol header")
    end = buf.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(buf) >= V1_MAX or b"\n" in buf[:V1_MAX]:
            raise ProxyProtocolError(f"PROXY v1 line longer than {V1_MAX} bytes or not ended by CRLF")
        return None, 0
    line = buf[:end]
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("PROXY v1 line is not ASCII") from None
    parts = text.split(" ")
    if len(parts) < 2 or parts[0] != "PROXY":
        raise ProxyProtocolError(f"malformed PROXY v1 line {text[:60]!r}")
    family = parts[1]
    if family == "UNKNOWN":
        # The rest of the line is to be ignored (spec 2.1).
        return ProxyHeader(1, PROXY, "UNKNOWN"), end + 2
    if family not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyProtocolError(f"malformed PROXY v1 line {text[:60]!r}")
    kind = ipaddress.IPv4Address if family == "TCP4" else ipaddress.IPv6Address
    try:
        src, dst = str(kind(parts[2])), str(kind(parts[3]))
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 line with a bad {family} address: {text[:80]!r}") from None
    return ProxyHeader(1, PROXY, family, src, dst, _v1_port(parts[4]), _v1_port(parts[5])), end + 2


def _v1_port(s: str) -> int:
    if not s.isdigit() or not s.isascii() or len(s) > 5 or (len(s) > 1 and s[0] == "0") or int(s) > 65535:
        raise ProxyProtocolError(f"PROXY v1 line with a bad port {s[:8]!r}")
    return int(s)


def _parse_v2(buf: bytes) -> tuple[ProxyHeader | None, int]:
    n = min(len(buf), len(V2_SIGNATURE))
    if buf[:n] != V2_SIGNATURE[:n]:
        raise ProxyProtocolError("the connection did not start with a PROXY protocol header")
    if len(buf) < V2_HEADER:
        return None, 0
    ver_cmd, fam = buf[12], buf[13]
    length = int.from_bytes(buf[14:16], "big")
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError(f"PROXY v2 header with version {ver_cmd >> 4}")
    cmd = ver_cmd & 0x0F
    if cmd > 1:
        raise ProxyProtocolError(f"PROXY v2 header with unknown command {cmd}")
    total = V2_HEADER + length
    if total > MAX_V2_SIZE:
        raise ProxyProtocolError(f"PROXY v2 header of {total} bytes is over the limit of {MAX_V2_SIZE}")
    if len(buf) < total:
        return None, 0
    block = buf[V2_HEADER:total]
    if cmd == 0:
        # LOCAL: the proxy's own connection (health checks); whatever follows
        # the header is to be skipped, addresses included.
        return ProxyHeader(2, LOCAL, "UNSPEC"), total
    known = _V2_FAMILIES.get(fam)
    if known is None:
        raise ProxyProtocolError(f"PROXY v2 header with unknown address family 0x{fam:02x}")
    family, size, stream = known
    if not stream:
        raise ProxyProtocolError(f"PROXY v2 header for a datagram protocol ({family})")
    if len(block) < size:
        raise ProxyProtocolError(f"PROXY v2 {family} header with {len(block)} address bytes, needs {size}")
    tlvs = _tlvs(block[size:])
    if family == "TCP4":
        s, d, sp, dp = _V4_ADDRS.unpack_from(block)
        return ProxyHeader(2, PROXY, family, str(ipaddress.IPv4Address(s)), str(ipaddress.IPv4Address(d)),
                           sp, dp, tlvs), total
    if family == "TCP6":
        s, d, sp, dp = _V6_ADDRS.unpack_from(block)
        return ProxyHeader(2, PROXY, family, str(ipaddress.IPv6Address(s)), str(ipaddress.IPv6Address(d)),
                           sp, dp, tlvs), total
    # UNSPEC (addresses to be ignored) and UNIX (paths, no IP): keep the peer's.
    return ProxyHeader(2, PROXY, family, tlvs=tlvs), total


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """The type-length-value records after the addresses. They are not used,
    only walked with every length checked, so a malformed one is refused."""
    out = []
    i, n = 0, len(data)
    while i < n:
        if n - i < 3:
            raise ProxyProtocolError("PROXY v2 header with a truncated TLV")
        kind = data[i]
        size = int.from_bytes(data[i + 1:i + 3], "big")
        if i + 3 + size > n:
            raise ProxyProtocolError("PROXY v2 header with a TLV longer than the header")
        out.append((kind, data[i + 3:i + 3 + size]))
        i += 3 + size
    return tuple(out)


def v1_line(src: str, dst: str, sport: int, dport: int) -> bytes:
    """A v1 header (for tests and tools)."""
    family = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode("ascii")


def v2_header(src: str | None = None, dst: str | None = None, sport: int = 0, dport: int = 0, *,
              local: bool = False, tlvs: bytes = b"") -> bytes:
    """A v2 header (for tests and tools): PROXY over TCP4/TCP6, or LOCAL."""
    if local or src is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + len(tlvs).to_bytes(2, "big") + tlvs
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        fam, block = 0x11, _V4_ADDRS.pack(s.packed, d.packed, sport, dport)
    else:
        fam, block = 0x21, _V6_ADDRS.pack(s.packed, d.packed, sport, dport)
    block += tlvs
    return V2_SIGNATURE + bytes([0x21, fam]) + len(block).to_bytes(2, "big") + block
