"""Closing means closing (issue 25 item 4): when the server closes a client
connection, the client sees the end of the stream at once, even while a
process the app forked still holds a copy of the socket (a close() alone
sends no FIN while another descriptor is open: shutdown() does)."""

import json
import os
import signal
import socket

import pytest

from tests.support.server import alive, read_response

APP = "tests.apps.fork_app:app"
# The helper lives HELPER_SECONDS (30 s); the client waits for the end of
# the stream at most this long: an EOF after it would come from the helper's exit.
EOF_WAIT = 20.0


def _request(port: int, head: bytes) -> tuple[socket.socket, int]:
    """Send one request, read its response; the socket and the helper's pid."""
    s = socket.create_connection(("127.0.0.1", port), timeout=EOF_WAIT)
    s.sendall(head)
    status, headers, _, rest = read_response(s)
    assert status == 200 and rest == b""
    return s, int(headers["x-helper-pid"])


def _eof_while_helper_lives(s: socket.socket, helper: int) -> None:
    try:
        assert s.recv(1) == b"", "the server sent more after its response"
        # The end of the stream came while the helper still held the socket:
        # the server's close, not the helper's exit, ended it.
        assert alive(helper), "the helper had exited: its exit, not the server, closed the connection"
    finally:
        s.close()
        try:
            os.kill(helper, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",  # the worker closes (FINISHED)
    b"GET / HTTP/1.0\r\nHost: t\r\n\r\n",  # HTTP/1.0 without keep-alive: the same path
], ids=["connection-close", "http10"])
def test_a_closed_connection_ends_while_a_forked_helper_holds_it(server_factory, head):
    srv = server_factory("--start-servers", "1", "--threads-per-child", "2", app=APP).start()
    s, helper = _request(srv.port, head)
    _eof_while_helper_lives(s, helper)


def test_a_keep_alive_timeout_close_ends_while_a_forked_helper_holds_it(server_factory):
    srv = server_factory("--start-servers", "1", "--threads-per-child", "2", "--keep-alive-timeout", "1",
                         app=APP).start()
    s, helper = _request(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    _eof_while_helper_lives(s, helper)  # the listener closes it after KeepAliveTimeout


def test_no_socket_of_a_child_survives_an_exec(server_factory):
    """An app that runs a program (subprocess with close_fds=False, os.exec*)
    hands it no listening socket and no client connection: every socket of
    a child is close-on-exec."""
    srv = server_factory("--start-servers", "1", "--threads-per-child", "2", app=APP).start()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /inheritable HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, _, body, _ = read_response(s)
    assert status == 200 and json.loads(body) == []
