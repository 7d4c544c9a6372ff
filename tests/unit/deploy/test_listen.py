"""Binding the Listen addresses (mpmserver/deploy/listen.py), on the loopback."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from mpmserver.deploy.listen import bind_listeners, host_port, url


def cfg(*addresses: tuple[str, int]) -> SimpleNamespace:
    return SimpleNamespace(listen=list(addresses), listen_backlog=16)


@pytest.fixture
def taken_port():
    """A port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        yield other.getsockname()[1]


def is_open(sock: socket.socket) -> bool:
    return sock.fileno() != -1


def test_binds_every_address_listening_and_not_inheritable():
    out = bind_listeners(cfg(("127.0.0.1", 0), ("127.0.0.1", 0)))
    try:
        # Two port-0 entries are one key: the last one bound stays.
        assert list(out) == [("127.0.0.1", 0)]
        [sock] = out.values()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert not sock.get_inheritable()
    finally:
        for s in out.values():
            s.close()


def test_restart_reuses_bound_sockets_and_closes_dropped_ones():
    [sock] = bind_listeners(cfg(("127.0.0.1", 0))).values()
    port = sock.getsockname()[1]
    running = {("127.0.0.1", port): sock, ("127.0.0.1", 0): bind_listeners(cfg(("127.0.0.1", 0)))[
        ("127.0.0.1", 0)]}
    again = bind_listeners(cfg(("127.0.0.1", port), ("127.0.0.1", 0)), running)
    try:
        # Same address: the very socket, so no queued connection is lost.
        assert again[("127.0.0.1", port)] is sock
        # Port 0 asks for a new port each time.
        assert again[("127.0.0.1", 0)] is not running[("127.0.0.1", 0)]
        assert not is_open(running[("127.0.0.1", 0)])
        dropped = bind_listeners(cfg(("127.0.0.1", 0)), again)
        assert not is_open(sock)
        for s in dropped.values():
            s.close()
    finally:
        for s in [*running.values(), *again.values()]:
            s.close()


def test_bind_failure_names_the_address_and_leaves_the_running_sockets_open(taken_port):
    running = bind_listeners(cfg(("127.0.0.1", 0)))
    port = next(iter(running.values())).getsockname()[1]
    running = {("127.0.0.1", port): running[("127.0.0.1", 0)]}
    try:
        with pytest.raises(OSError, match=f"could not bind to address 127.0.0.1:{taken_port}: "):
            # The running socket is reused first, then the second address fails:
            # a restart that keeps the old listeners must find them still open.
            bind_listeners(cfg(("127.0.0.1", port), ("127.0.0.1", taken_port)), running)
        assert all(is_open(s) for s in running.values())
    finally:
        for s in running.values():
            s.close()


def test_addresses_are_written_with_ipv6_in_brackets():
    assert host_port("127.0.0.1", 80) == "127.0.0.1:80"
    assert host_port("::1", 8080) == "[::1]:8080"
    assert url(("::", 443, 0, 0)) == "http://[::]:443"
    assert url(("0.0.0.0", 8000)) == "http://0.0.0.0:8000"
