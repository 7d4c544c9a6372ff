"""Socket activation under systemd-socket-activate (systemd's tool): the sockets it passes are served, and
kept across a binary upgrade that names the new main pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct

import pytest

from tests.support.server import Server, alive, children_of, wait_for
from tests.support.systemd import receive_until

pytestmark = pytest.mark.external


SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


class ActivatedServer(Server):
    """The server started by systemd-socket-activate, listening on what it passes."""

    def __init__(self, *args, unix_path: str, listen_line: bool = False, setenv: tuple[str, ...] = (),
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.unix_path = unix_path
        self.listen_line = listen_line
        self.setenv = setenv  # systemd-socket-activate passes only the variables named with -E

    def command(self) -> list[str]:
        cmd = super().command()
        if not self.listen_line:
            i = cmd.index("--listen")
            del cmd[i:i + 2]
        return [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{self.port}", "-l", self.unix_path,
                "--fdname=web:local", *(f"-E{name}" for name in self.setenv), *cmd]


def get_over_unix(path: str, target: str = "/hello") -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return b"".join(iter(lambda: s.recv(65536), b""))


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed "
                    "(Debian package systemd); .ci/run installs it")
@pytest.mark.parametrize("listen_line", [False, True], ids=["alone", "matched-to-Listen"])
def test_socket_activation_serves_tcp_and_unix_sockets_passed_by_systemd(tmp_path, listen_line):
    unix_path = str(tmp_path / "app.sock")
    srv = ActivatedServer("--start-servers", "1", "--threads-per-child", "2", "--log-level", "info",
                          unix_path=unix_path, listen_line=listen_line, tmp_path=tmp_path)
    try:
        srv.start()  # the first connection makes systemd-socket-activate exec the server
        assert b"Hello" in get_over_unix(unix_path)
        err = srv.stderr
        assert "descriptor 3 (web) is http://127.0.0.1:" in err
        assert f"descriptor 4 (local) is unix:{unix_path}" in err
        assert "could not bind" not in err
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(15) == 0
        # systemd owns the socket file: the server does not remove it.
        assert os.path.exists(unix_path)
    finally:
        srv.stop()


def receive_with_sender_until(sock: socket.socket, wanted: str, timeout: float = 20.0) -> list[tuple[int, str]]:
    """(sender pid, message) until a message holds the line ``wanted`` (any
    message when it is empty; SCM_CREDENTIALS: the socket must have SO_PASSCRED set)."""
    got: list[tuple[int, str]] = []
    creds = struct.Struct("iII")

    def one() -> bool:
        try:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(creds.size))
        except TimeoutError:
            return False
        pid = next((creds.unpack(d[:creds.size])[0] for lvl, typ, d in anc
                    if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS), 0)
        got.append((pid, data.decode()))
        return not wanted or wanted in got[-1][1].split("\n")
    wait_for(one, timeout, 0, f"{wanted} on NOTIFY_SOCKET (got {got!r})")
    return got


def get_pid_over_unix(path: str) -> int:
    return json.loads(get_over_unix(path, "/pid").split(b"\r\n\r\n", 1)[1])["pid"]


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed "
                    "(Debian package systemd); .ci/run installs it")
def test_usr2_upgrade_keeps_the_sockets_systemd_passed_and_names_the_new_main_pid(
        tmp_path, notify_socket, monkeypatch):
    """Type=notify with socket activation: USR2 hands systemd's sockets to the
    new master, the old one says MAINPID= for it before it stops, the new one
    says READY=1, and both sockets serve from the new master's children."""
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    unix_path = str(tmp_path / "app.sock")
    srv = ActivatedServer("-w", "1", "--threads", "2", unix_path=unix_path, setenv=("NOTIFY_SOCKET",),
                          tmp_path=tmp_path)
    new_master = None
    try:
        srv.start()
        receive_until(sock, "READY=1", [])
        old_children = set(srv.children())
        assert get_pid_over_unix(unix_path) in old_children
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # who sent each message, as systemd sees it
        srv.signal(signal.SIGUSR2)
        senders = receive_with_sender_until(sock, "READY=1")  # the new master serves
        mainpid = [(pid, m) for pid, m in senders if m.startswith("MAINPID=")]
        assert mainpid, senders
        # The old master (systemd's main pid) names the new one and says READY=1 for it.
        new_master = int(mainpid[0][1].split("\n")[0].split("=", 1)[1])
        assert mainpid[0][0] == srv.pid
        assert mainpid[0][1] == f"MAINPID={new_master}\nREADY=1"
        assert new_master != srv.pid and alive(new_master)
        assert srv.wait_exit(30) == 0  # the old master stopped gracefully
        # systemd's sockets are still open, now served by the new master's children.
        new_children = set(children_of(new_master))
        assert get_pid_over_unix(unix_path) in new_children
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            body = b"".join(iter(lambda: s.recv(65536), b"")).split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["pid"] in new_children
        assert not new_children & old_children
        # Nothing more from the old master (no STOPPING=1: the service is not
        # stopping); the new one reports its status once the old one is gone.
        later = receive_with_sender_until(sock, "", 10)
        assert later[0][0] == new_master and later[0][1].startswith("STATUS=1 child, "), later
    finally:
        if new_master is not None and alive(new_master):
            os.kill(new_master, signal.SIGTERM)
            wait_for(lambda: not alive(new_master), 15, 0.05, "the new master to stop")
        srv.stop()
    assert os.path.exists(unix_path), "systemd owns the socket file: no master removes it"
