"""connection.send_file, the one place the loop decides how a file goes out:
sendfile on a plain socket, a read and a send on any other (a TLS socket,
which sendfile cannot write to). Real socket pairs, no server."""

import os
import socket
import types

from mpmserver.child.connection import send_file, send_head


class WrappedSocket(socket.socket):
    """A socket of another type, as ssl.SSLSocket is: sendfile is not for it."""

    sent_by_send = 0

    def send(self, data, flags=0):
        if flags:  # as ssl.SSLSocket: "non-zero flags not allowed"
            raise ValueError("non-zero flags not allowed in calls to send()")
        n = super().send(data, flags)
        self.sent_by_send += n
        return n


def transfer(sock_type, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 1000)
    a, b = socket.socketpair()
    if sock_type is not socket.socket:
        a = sock_type(a.family, a.type, a.proto, fileno=a.detach())
    fd = os.open(path, os.O_RDONLY)
    try:
        conn = types.SimpleNamespace(sock=a, fd=a.fileno())
        n = send_file(conn, fd, 1000, 5000)
        got = b""
        while len(got) < n:
            got += b.recv(65536)
        return n, got, a
    finally:
        os.close(fd)
        a.close()
        b.close()


def test_a_plain_socket_gets_sendfile(tmp_path):
    n, got, _ = transfer(socket.socket, tmp_path)
    assert n == 5000 and got == (bytes(range(256)) * 1000)[1000:6000]


def test_another_socket_type_gets_read_and_send(tmp_path):
    n, got, sock = transfer(WrappedSocket, tmp_path)
    assert n == 5000 and got == (bytes(range(256)) * 1000)[1000:6000]
    assert sock.sent_by_send == 5000


def test_the_head_goes_with_msg_more_only_where_flags_are_taken():
    for sock_type in (socket.socket, WrappedSocket):
        a, b = socket.socketpair()
        if sock_type is not socket.socket:
            a = sock_type(a.family, a.type, a.proto, fileno=a.detach())
        conn = types.SimpleNamespace(sock=a, fd=a.fileno())
        try:
            assert send_head(conn, b"HTTP/1.1 200 OK\r\n\r\n", True) == 19
            a.send(b"x")  # what follows uncorks the head
            assert b.recv(100).startswith(b"HTTP/1.1 200 OK")
        finally:
            a.close()
            b.close()
