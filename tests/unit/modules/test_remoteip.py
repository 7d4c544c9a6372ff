"""RemoteIP (mpmserver/modules/remoteip.py): the header walk, pure, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmserver import config as configmod
from mpmserver.modules.remoteip import (
    UNIX_PEER,
    Client,
    RemoteIP,
    Trust,
    apply,
    connect,
    from_config,
    parse_forwarded,
    resolve,
)

XFF = b"x-forwarded-for"


def rip(header: str | None = "X-Forwarded-For", trusted=("127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"),
        proxy_protocol=False) -> RemoteIP:
    return RemoteIP(header.lower().encode() if header else None, Trust(trusted), proxy_protocol)


def walk(headers, peer="127.0.0.1", r=None, log=None):
    return resolve(r or rip(), peer, [(k.lower().encode(), v.encode()) for k, v in headers],
                   log.append if log is not None else None)


# -- trust -------------------------------------------------------------------------------------

def test_trust_addresses_networks_v4_v6_and_unix_as_a_choice():
    t = Trust(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])
    assert t.trusts("127.0.0.1") and t.trusts("10.9.8.7") and t.trusts("2001:db8::5")
    assert not t.trusts("127.0.0.2") and not t.trusts("11.0.0.1") and not t.trusts("2001:db9::1")
    assert t.trusts("::ffff:10.1.2.3")  # IPv4-mapped, from a dual-stack socket
    assert not t.trusts(UNIX_PEER) and not t.trusts("garbage") and not t.trusts("")
    assert Trust(["unix"]).trusts(UNIX_PEER) and not Trust(["unix"]).trusts("127.0.0.1")
    assert not Trust([])


def test_nothing_is_trusted_by_default():
    cfg = configmod.from_kwargs()
    assert from_config(cfg) is None  # RemoteIP off: nothing per request
    assert cfg.remote_ip_trusted_proxy == []
    with pytest.raises(configmod.ConfigError, match="needs RemoteIPTrustedProxy"):
        configmod.from_kwargs(remote_ip_header="X-Forwarded-For")
    with pytest.raises(configmod.ConfigError, match="needs RemoteIPTrustedProxy"):
        configmod.from_kwargs(remote_ip_proxy_protocol=True)


# -- X-Forwarded-For ---------------------------------------------------------------------------

def test_one_proxy():
    assert walk([("X-Forwarded-For", "198.51.100.7")]) == Client("198.51.100.7", None, None)


def test_untrusted_peer_header_is_ignored_entirely():
    assert walk([("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-Proto", "https")], peer="203.0.113.9") is None


def test_spoofed_chain_stops_at_the_first_untrusted_from_the_right():
    # The client sent "X-Forwarded-For: 127.0.0.1, 10.0.0.1" itself; our
    # proxy appended the address it saw.
    got = walk([("X-Forwarded-For", "127.0.0.1, 10.0.0.1, 198.51.100.7, 10.2.2.2")])
    assert got.addr == "198.51.100.7"


def test_every_hop_trusted_gives_the_leftmost():
    assert walk([("X-Forwarded-For", "10.0.0.1, 10.0.0.2")]).addr == "10.0.0.1"


def test_several_header_fields_are_one_list():
    got = walk([("X-Forwarded-For", "198.51.100.1"), ("Accept", "x"), ("X-Forwarded-For", "10.0.0.3")])
    assert got.addr == "198.51.100.1"


@pytest.mark.parametrize("value, client", [
    ("2001:db8::1", "2001:db8::1"),
    ("[2001:db8::1]:4711", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("198.51.100.1:5555", "198.51.100.1"),
    ("::ffff:198.51.100.1", "198.51.100.1"),
    ("  198.51.100.1  ", "198.51.100.1"),
    ("2001:db8:0:0:0:0:0:1", "2001:db8::1"),  # normalised
])
def test_address_forms(value, client):
    assert walk([("X-Forwarded-For", value)]).addr == client


def test_ipv6_proxies_are_walked():
    got = walk([("X-Forwarded-For", "2001:db8::7, 2001:db8:ffff::1")], peer="2001:db8:ffff::2")
    assert got.addr == "2001:db8::7"


@pytest.mark.parametrize("value", ["garbage", "", "unknown", "1.2.3.4.5", "[1.2.3.4]", "[::1", "1.2.3.4:x",
                                   "999.1.1.1", "<script>", "1.2.3.4:5:6", "\x00"])
def test_garbage_at_the_right_leaves_the_peer_with_a_debug_line(value):
    log: list[str] = []
    got = walk([("X-Forwarded-For", value)], log=log)
    assert got.addr == "127.0.0.1"
    assert log and "not an IP address" in log[0]


def test_garbage_further_left_stops_at_the_last_good_hop():
    # mod_remoteip: the walk stops; the client is the last address that parsed.
    got = walk([("X-Forwarded-For", "198.51.100.1, bogus, 10.0.0.5")])
    assert got.addr == "10.0.0.5"


def test_overlong_header_is_ignored():
    log: list[str] = []
    assert walk([("X-Forwarded-For", ", ".join(["10.0.0.1"] * 2000))], log=log) is None
    assert "ignored" in log[0]


def test_other_header_name():
    r = rip("X-Real-IP")
    assert walk([("X-Forwarded-For", "1.1.1.1"), ("X-Real-IP", "198.51.100.4")], r=r).addr == "198.51.100.4"
    assert walk([("X-Forwarded-For", "1.1.1.1")], r=r) is None


# -- X-Forwarded-Proto ------------------------------------------------------------------------

def test_proto_from_a_trusted_proxy_sets_the_scheme():
    assert walk([("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-Proto", "https")]).scheme == "https"
    assert walk([("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-Proto", "HTTP")]).scheme == "http"


def test_proto_aligned_with_the_client_hop_when_every_proxy_appends():
    got = walk([("X-Forwarded-For", "198.51.100.1, 10.0.0.1"), ("X-Forwarded-Proto", "https, http")])
    assert (got.addr, got.scheme) == ("198.51.100.1", "https")


def test_proto_otherwise_the_nearest_proxys_word():
    got = walk([("X-Forwarded-For", "198.51.100.1, 10.0.0.1"), ("X-Forwarded-Proto", "https")])
    assert got.scheme == "https"


@pytest.mark.parametrize("proto", ["ftp", "", "https;", "javascript"])
def test_bad_proto_is_ignored(proto):
    log: list[str] = []
    got = walk([("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-Proto", proto)], log=log)
    assert got.scheme is None and any("X-Forwarded-Proto" in line for line in log)


# -- Forwarded (RFC 7239) ---------------------------------------------------------------------

def fwd(value, peer="127.0.0.1", log=None):
    return walk([("Forwarded", value)], peer=peer, r=rip("Forwarded"), log=log)


def test_forwarded_rfc_examples():
    assert fwd('for="_gazonk"').addr == "127.0.0.1"  # obfuscated: unknown client, peer stays
    assert fwd('For="[2001:db8:cafe::17]:4711"') == Client("2001:db8:cafe::17", 4711, None)
    assert fwd("for=192.0.2.60;proto=http;by=203.0.113.43") == Client("192.0.2.60", None, "http")
    assert fwd("for=192.0.2.43, for=198.51.100.17").addr == "198.51.100.17"


def test_forwarded_walk_through_trusted_hops_with_proto_of_the_client_element():
    got = fwd('for=198.51.100.9;proto=https, for=10.0.0.2;proto=http')
    assert got == Client("198.51.100.9", None, "https")


def test_forwarded_spoofed_left_part_is_not_reached():
    got = fwd('for=127.0.0.1;proto=https, for=203.0.113.5;proto=http')
    assert got == Client("203.0.113.5", None, "http")


@pytest.mark.parametrize("value", ["for=unknown", 'for="_hidden"', 'for="[2001:db8::1]:_port"', "proto=https",
                                   'for="[1.2.3.4]"', 'for="[2001:db8::1"'])
def test_forwarded_unknown_or_obfuscated_node_ends_the_walk(value):
    log: list[str] = []
    assert fwd(value, log=log).addr == "127.0.0.1"
    assert log


@pytest.mark.parametrize("value", ['for="198.51.100.1', "for", "for=", "for=1.2.3.4;;x", "=x", "for=a b",
                                   "for=1.2.3.4;for=5.6.7.8", "for=1.2.3.4 proto=http"])
def test_malformed_forwarded_is_ignored_with_a_debug_line(value):
    log: list[str] = []
    got = fwd(value, log=log)
    assert got.addr == "127.0.0.1"
    assert log


def test_parse_forwarded_syntax():
    assert parse_forwarded('for=1.2.3.4;Proto=HTTPS;by="[::1]", ,for="a\\"b"') == [
        {"for": "1.2.3.4", "proto": "HTTPS", "by": "[::1]"}, {"for": 'a"b'}]
    assert parse_forwarded("") == []


# -- per connection, and the environ ----------------------------------------------------------

def test_connect_decides_once_per_connection():
    r = rip(trusted=("127.0.0.1", "unix"), proxy_protocol=True)
    assert connect(r, "127.0.0.1") == (True, True)
    assert connect(r, "203.0.113.1") == (False, True)
    assert connect(r, UNIX_PEER) == (True, True)
    assert connect(None, "127.0.0.1") == (False, False)
    assert connect(rip(None, proxy_protocol=True), "127.0.0.1") == (False, True)


def test_apply_writes_the_environ():
    env = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5", "wsgi.url_scheme": "http"}
    apply(env, Client("198.51.100.1", None, "https"))
    assert env == {"REMOTE_ADDR": "198.51.100.1", "REMOTE_PORT": "0", "wsgi.url_scheme": "https", "HTTPS": "on"}
    apply(env, Client("2001:db8::1", 4711, None))
    assert env["REMOTE_ADDR"] == "2001:db8::1" and env["REMOTE_PORT"] == "4711" and env["wsgi.url_scheme"] == "https"


# -- anything at all ----------------------------------------------------------------------------

_POOL = ["127.0.0.1", "10.1.2.3", "198.51.100.1", "203.0.113.9", "2001:db8::1", "2001:db8:ffff::9"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_POOL), min_size=1, max_size=6), st.text(max_size=20))
def test_any_chain_gives_the_first_untrusted_hop_from_the_right(chain, proto):
    got = walk([("X-Forwarded-For", ", ".join(chain)), ("X-Forwarded-Proto", proto)], log=[])
    trust = rip().trust
    expected = next((a for a in reversed(chain) if not trust.trusts(a)), chain[0])
    assert got.addr == expected
    assert got.scheme in (None, "http", "https")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_POOL), st.text(max_size=12)), max_size=6), st.text(max_size=20))
def test_any_xff_never_raises(chain, proto):
    got = walk([("X-Forwarded-For", ", ".join(chain)), ("X-Forwarded-Proto", proto)], log=[])
    assert got is not None and got.scheme in (None, "http", "https")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_forwarded_never_raises(value):
    got = fwd(value, log=[])
    assert got is not None and got.scheme in (None, "http", "https")
