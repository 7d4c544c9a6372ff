"""The client behind a reverse proxy, with mod_remoteip's names and semantics. Pure.

``RemoteIPTrustedProxy`` lists the peers whose word is believed (addresses and
networks, IPv4 and IPv6, and ``unix`` for peers on a unix socket: nothing is
trusted by default). ``RemoteIPHeader`` names the header they write the
client into: ``X-Forwarded-For`` (or any header with that syntax) or the
standard ``Forwarded`` (RFC 7239). The header is read right to left: each
address that is a trusted proxy is passed over, and the first one that is not
becomes the client; when every address is trusted, the leftmost is. A header
from a peer that is not trusted is ignored entirely, so a client cannot choose
its own address. A value that does not parse (``for=unknown``, an obfuscated
``_name``, garbage) ends the walk: the client is the last address that did
(Apache does the same), and it is logged at debug level, never an error.

``X-Forwarded-Proto`` (or ``proto=`` of the client's ``Forwarded`` element)
from a trusted proxy sets the URL scheme. The caller (request.py) applies the
result to the environ; `connect()` is what the listener decides once per
connection (the peer is trusted or not, PROXY protocol expected or not).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, NamedTuple

# REMOTE_ADDR of a client on a unix socket (nginx's $remote_addr says the same).
UNIX_PEER = "unix:"
# The RemoteIPTrustedProxy word for peers on a unix socket.
UNIX_WORD = "unix"
FORWARDED = b"forwarded"
X_FORWARDED_PROTO = b"x-forwarded-proto"
SCHEMES = {"http": "http", "https": "https"}
# A header longer than this is not walked (it cannot be a real proxy chain).
MAX_HEADER_BYTES = 8192

_Network = Any  # ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(spec: str) -> _Network | str:
    """One RemoteIPTrustedProxy word: an address, a network, or ``unix``;
    raises ValueError."""
    if spec.lower() == UNIX_WORD:
        return UNIX_WORD
    return ipaddress.ip_network(spec, strict=False)


@lru_cache(maxsize=4096)  # a proxy's clients repeat; ipaddress parsing costs ~1.5 us
def parse_ip(text: str) -> str | None:
    """``text`` as a normalised IP address string (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


class Trust:
    """Which peers are trusted proxies; answers are cached (bounded)."""

    __slots__ = ("networks", "unix", "_cache")

    def __init__(self, specs: Iterable[str]):
        nets = []
        unix = False
        for spec in specs:
            parsed = parse_trusted(spec)
            if parsed == UNIX_WORD:
                unix = True
            else:
                nets.append(parsed)
        self.networks = tuple(nets)
        self.unix = unix
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks) or self.unix

    def trusts(self, addr: str) -> bool:
        ok = self._cache.get(addr)
        if ok is None:
            ok = self._judge(addr)
            if len(self._cache) < 4096:
                self._cache[addr] = ok
        return ok

    def _judge(self, addr: str) -> bool:
        if addr == UNIX_PEER:
            return self.unix
        try:
            ip = ipaddress.ip_address(addr.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)


@dataclass(frozen=True)
class RemoteIP:
    """The RemoteIP settings of a child, built once from the configuration."""

    header: bytes | None  # lower-case header name; None: no header is read
    trust: Trust
    proxy_protocol: bool

    @property
    def forwarded(self) -> bool:
        return self.header == FORWARDED


def from_config(cfg: Any) -> RemoteIP | None:
    """None when RemoteIP is off (no header, no PROXY protocol): nothing to pay per request."""
    if not cfg.remote_ip_header and not cfg.remote_ip_proxy_protocol:
        return None
    header = cfg.remote_ip_header.lower().encode("latin-1") if cfg.remote_ip_header else None
    return RemoteIP(header, Trust(cfg.remote_ip_trusted_proxy), cfg.remote_ip_proxy_protocol)


class Client(NamedTuple):
    """Who the request is from, after the walk."""

    addr: str
    port: int | None  # known only from a Forwarded for= with a port
    scheme: str | None  # "http" / "https" when a trusted proxy said so


def resolve(rip: RemoteIP, peer: str, headers: Iterable[tuple[bytes, bytes]],
            debug: Callable[[str], None] | None = None) -> Client | None:
    """The client of one request from ``peer`` with ``headers`` (lower-case names);
    None when nothing changes (no header, or the peer is not trusted)."""
    if rip.header is None or not rip.trust.trusts(peer):
        return None
    values = []
    protos = []
    name = rip.header
    for k, v in headers:
        if k == name:
            values.append(v)
        elif k == X_FORWARDED_PROTO:
            protos.append(v)
    if not values:
        return None
    raw = b",".join(values)
    if len(raw) > MAX_HEADER_BYTES:
        _say(debug, f"RemoteIP: {name.decode()} header of {len(raw)} bytes ignored (over {MAX_HEADER_BYTES})")
        return None
    text = raw.decode("latin-1")
    if rip.forwarded:
        return _walk_forwarded(rip.trust, peer, text, debug)
    return _walk_list(rip.trust, peer, text, b",".join(protos).decode("latin-1") if protos else None,
                      name.decode(), debug)


def _say(debug: Callable[[str], None] | None, msg: str) -> None:
    if debug is not None:
        debug(msg)


def _walk_list(trust: Trust, peer: str, text: str, protos: str | None, name: str,
               debug: Callable[[str], None] | None) -> Client:
    """X-Forwarded-For: comma-separated addresses, the nearest hop last."""
    entries = [e.strip() for e in text.split(",")]
    client, index = peer, None
    for i in range(len(entries) - 1, -1, -1):
        addr = _list_node(entries[i])
        if addr is None:
            _say(debug, f"RemoteIP: {name} value {entries[i][:64]!r} is not an IP address; "
                        f"client is {client}")
            break
        client, index = addr, i
        if not trust.trusts(addr):
            break
    scheme = None
    if protos is not None:
        plist = [p.strip().lower() for p in protos.split(",")]
        # One proto per hop when the proxies append; otherwise the nearest
        # (trusted) proxy's word.
        p = plist[index] if index is not None and len(plist) == len(entries) else plist[-1]
        scheme = SCHEMES.get(p)
        if scheme is None:
            _say(debug, f"RemoteIP: X-Forwarded-Proto value {p[:32]!r} ignored")
    return Client(client, None, scheme)


def _list_node(value: str) -> str | None:
    """An X-Forwarded-For entry: 1.2.3.4, 1.2.3.4:port, 2001:db8::1, [2001:db8::1]:port."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not (value[end + 1] == ":" and value[end + 2:].isdigit())):
            return None
        return parse_ip(value[1:end]) if ":" in value[1:end] else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit():
            return None
        value = host
    return parse_ip(value)


def _walk_forwarded(trust: Trust, peer: str, text: str, debug: Callable[[str], None] | None) -> Client:
    """RFC 7239: elements separated by commas, the nearest hop last; each has
    for= (the address its proxy saw) and maybe proto=."""
    try:
        elements = parse_forwarded(text)
    except ValueError as exc:
        _say(debug, f"RemoteIP: Forwarded header ignored: {exc}")
        return Client(peer, None, None)
    client: str = peer
    port: int | None = None
    scheme: str | None = None
    for element in reversed(elements):
        node = element.get("for")
        parsed = _forwarded_node(node) if node is not None else None
        if parsed is None:
            _say(debug, f"RemoteIP: Forwarded for={node!r} is not an IP address; client is {client}")
            break
        client, port = parsed
        proto = element.get("proto")
        scheme = SCHEMES.get(proto.lower()) if proto is not None else None
        if proto is not None and scheme is None:
            _say(debug, f"RemoteIP: Forwarded proto={proto[:32]!r} ignored")
        if not trust.trusts(client):
            break
    return Client(client, port, scheme)


def _forwarded_node(node: str) -> tuple[str, int | None] | None:
    """for= value: 1.2.3.4, 1.2.3.4:port, [2001:db8::1], [2001:db8::1]:port.
    unknown and obfuscated (_name) nodes and ports are not addresses: None."""
    port = None
    if node.startswith("["):
        end = node.find("]")
        if end < 0:
            return None
        host, rest = node[1:end], node[end + 1:]
        if ":" not in host:
            return None
    else:
        host, _, rest = node.partition(":")
        rest = ":" + rest if _ else ""
    if rest:
        if rest[0] != ":" or not rest[1:].isdigit() or len(rest) > 6 or int(rest[1:]) > 65535:
            return None  # an obfuscated port (_abc) is as unknown as the address
        port = int(rest[1:])
    addr = parse_ip(host)
    return None if addr is None else (addr, port)


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_forwarded(text: str) -> list[dict[str, str]]:
    """RFC 7239 4: ``elem, elem`` with ``elem = pair *(";" pair)``, ``pair =
    token "=" (token / quoted-string)``; names are case-insensitive. Raises
    ValueError on anything else (the header is then ignored as a whole)."""
    elements: list[dict[str, str]] = [{}]
    i, n = 0, len(text)
    expect_pair = True
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if c == ",":
            elements.append({})
            expect_pair = True
            i += 1
            continue
        if c == ";":
            expect_pair = True
            i += 1
            continue
        if not expect_pair:
            raise ValueError(f"unexpected {c!r} at offset {i}")
        j = i
        while j < n and text[j] in _TCHAR:
            j += 1
        if j == i or j >= n or text[j] != "=":
            raise ValueError(f"expected name=value at offset {i}")
        key = text[i:j].lower()
        j += 1
        if j < n and text[j] == '"':
            j += 1
            buf = []
            while True:
                if j >= n:
                    raise ValueError("unterminated quoted string")
                ch = text[j]
                if ch == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if ch == '"':
                    j += 1
                    break
                buf.append(ch)
                j += 1
            value = "".join(buf)
        else:
            k = j
            while j < n and text[j] in _TCHAR:
                j += 1
            if j == k:
                raise ValueError(f"empty value for {key!r}")
            value = text[k:j]
        if key in elements[-1]:
            raise ValueError(f"{key!r} repeated in one element")
        elements[-1][key] = value
        expect_pair = False
        i = j
    return [e for e in elements if e]


def connect(rip: RemoteIP | None, peer: str) -> tuple[bool, bool]:
    """Decided once per connection: ``(its headers are believed, a PROXY
    header must come first)``. A connection that must carry a PROXY header
    but comes from a peer that is not trusted is refused by the listener."""
    if rip is None:
        return False, False
    return rip.header is not None and rip.trust.trusts(peer), rip.proxy_protocol


def apply(environ: dict, client: Client) -> None:
    """Write a resolved client into a request's environ."""
    environ["REMOTE_ADDR"] = client.addr
    environ["REMOTE_PORT"] = str(client.port) if client.port is not None else "0"
    if client.scheme is not None:
        environ["wsgi.url_scheme"] = client.scheme
        if client.scheme == "https":
            environ["HTTPS"] = "on"
