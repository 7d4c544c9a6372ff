"""A NOTIFY_SOCKET the test listens on, as systemd would, and reading it."""

import socket

import pytest

from tests.support.server import wait_for


@pytest.fixture
def notify_socket(tmp_path):
    """A NOTIFY_SOCKET the test listens on, as systemd would."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def receive_until(sock: socket.socket, wanted: str, seen: list[str], timeout: float = 20.0) -> list[str]:
    """Datagrams until one holds the line ``wanted``; all of them in ``seen``."""
    def got():
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            return False
        return not wanted or wanted in seen[-1].split("\n")
    wait_for(got, timeout, 0, f"{wanted} on NOTIFY_SOCKET (got {seen!r})")
    return seen
