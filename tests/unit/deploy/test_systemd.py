"""systemd: socket activation and readiness notification (systemd.py, notify.py, listen.py).

The protocol's pure parts are tested as data; the mechanism with real
sockets: a datagram socket the test listens on as NOTIFY_SOCKET, and
systemd's own systemd-socket-activate passing the listening sockets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import time
from types import SimpleNamespace

import pytest

from mpmserver.deploy import listen, systemd
from mpmserver.deploy.systemd_notify import Notifier, Supervisor

from tests.support.server import Server, alive, children_of, wait_for

# --- the protocol, as data -------------------------------------------------------


def test_listen_fds_are_numbered_from_3_and_named():
    env = {"LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "web:local"}
    assert systemd.listen_fds(env, 42) == [(3, "web"), (4, "local")]
    assert systemd.listen_fds({"LISTEN_FDS": "1", "LISTEN_PID": "42"}, 42) == [(3, "unknown")]


def test_listen_fds_meant_for_another_process_or_absent_are_ignored():
    assert systemd.listen_fds({"LISTEN_FDS": "2", "LISTEN_PID": "41"}, 42) == []
    assert systemd.listen_fds({}, 42) == []


@pytest.mark.parametrize("env, message", [
    ({"LISTEN_FDS": "two", "LISTEN_PID": "42"}, "LISTEN_FDS='two' is not a number"),
    ({"LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "a"}, "names 1 sockets but LISTEN_FDS=2"),
])
def test_listen_fds_that_make_no_sense_say_why(env, message):
    with pytest.raises(systemd.ActivationError, match=message):
        systemd.listen_fds(env, 42)


def test_notify_address_path_abstract_or_none():
    assert systemd.notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert systemd.notify_address("@sd-notify/1") == b"\0sd-notify/1"
    assert systemd.notify_address("") is None and systemd.notify_address(None) is None
    assert systemd.notify_address("vsock:2:1234") is None


def test_messages_and_status_line():
    assert systemd.message(systemd.READY, "STATUS=a\nb") == b"READY=1\nSTATUS=a b"
    assert systemd.reloading(123) == ("RELOADING=1", "MONOTONIC_USEC=123")
    assert systemd.status_text(1, 2, 3, 4.25) == "STATUS=1 child, 2 busy / 3 idle threads, 4.2 requests/s"
    assert systemd.status_text(3, 0, 75, None, "draining") == \
        "STATUS=draining: 3 children, 0 busy / 75 idle threads"


def test_listen_lines_match_inherited_sockets_by_address():
    m = listen.listen_matches
    assert m(("127.0.0.1", 8000), ("127.0.0.1", 8000))
    assert m(("0.0.0.0", 8000), ("::", 8000))  # Listen 8000 and ListenStream=8000
    assert not m(("127.0.0.1", 8000), ("127.0.0.1", 8001))
    assert not m(("127.0.0.1", 0), ("127.0.0.1", 8000))  # port 0 names no socket
    assert m(("unix:/run/a.sock", 0), ("unix:/run/a.sock", 0))
    assert not m(("unix:/run/a.sock", 0), ("127.0.0.1", 0))


# --- the mechanism, with real sockets -------------------------------------------


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


def test_notifier_sends_to_paths_and_abstract_names(notify_socket):
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path}
    notifier = Notifier.from_environ(env)
    assert "NOTIFY_SOCKET" not in env  # the children's apps must not see it
    assert notifier.ready("STATUS=up")
    assert sock.recv(100) == b"READY=1\nSTATUS=up"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        name = f"mpmserver-test-{os.getpid()}"
        abstract.bind("\0" + name)
        Notifier.from_environ({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert abstract.recv(100) == b"STOPPING=1"


def test_notifier_reports_an_unreachable_socket_once(tmp_path):
    errors = []
    notifier = Notifier(str(tmp_path / "nobody-listens"), errors.append)
    assert not notifier.ready() and not notifier.stopping()
    assert len(errors) == 1 and "cannot notify systemd at NOTIFY_SOCKET" in errors[0]


def nothing_more(sock: socket.socket, path: str) -> None:
    """Nothing was sent since the last message read: a sentinel sent now is
    the next one (every send above returned before it was queued)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"SENTINEL", path)
    assert receive_until(sock, "", [], 5) == ["SENTINEL"]


def test_supervisor_says_ready_once_per_generation_and_stopping_once(notify_socket):
    sock, path = notify_socket
    sup = Supervisor(Notifier(path))
    sup.child_serves(current_generation=False)  # an old generation's child: not yet
    sup.child_serves(current_generation=True)
    sup.child_serves(current_generation=True)
    sup.reloading()
    sup.restart_skipped()
    sup.stopping()
    sup.stopping()
    got = []
    receive_until(sock, "STOPPING=1", got, 5)
    assert got[0] == "READY=1"
    assert got[1].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert got[2].startswith("READY=1\nSTATUS=restart skipped")
    assert got[3:] == ["STOPPING=1"]
    nothing_more(sock, path)


def test_supervisor_after_an_upgrade_is_silent_until_the_old_master_is_gone(notify_socket):
    sock, path = notify_socket
    snap = SimpleNamespace(total_accesses=0, processes_alive=1, busy_workers=0, idle_workers=2)
    held = Supervisor(Notifier(path), old_master=os.getppid())  # our parent: still there
    held.child_serves(current_generation=True)  # the old master says READY=1 for us
    held.status(snap, draining=False)
    nothing_more(sock, path)
    gone = Supervisor(Notifier(path), old_master=os.getppid() + 1_000_000)  # not our parent any more
    gone.status(snap, draining=False)
    assert receive_until(sock, "", [], 5)[0].startswith("STATUS=1 child, ")
    # The old master's side: MAINPID= and READY=1 in one message, then silence.
    old = Supervisor(Notifier(path))
    old.taken_over(4242)
    old.stopping()
    assert receive_until(sock, "", [], 5) == ["MAINPID=4242\nREADY=1"]
    nothing_more(sock, path)


def test_status_counts_requests_per_second_between_calls():
    notifier = Notifier("/nonexistent")
    snap = SimpleNamespace(total_accesses=100, processes_alive=2, busy_workers=1, idle_workers=7)
    assert notifier.status_from(snap, 10.0) == "STATUS=2 children, 1 busy / 7 idle threads"
    snap.total_accesses = 150
    assert notifier.status_from(snap, 12.0).endswith("25.0 requests/s")
    snap.total_accesses = 3  # a HUP zeroed the scoreboard: no rate this time
    assert "requests/s" not in notifier.status_from(snap, 13.0)


@pytest.fixture
def no_inherited():
    saved = dict(listen._inherited)
    listen._inherited.clear()
    yield
    listen.close_listeners(listen._inherited.values())
    listen._inherited.clear()
    listen._inherited.update(saved)


def listening(addr="127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((addr, 0))
    s.listen(8)
    return s


def test_inherited_sockets_replace_binding_and_serve_alone_without_listen(no_inherited):
    a, b = listening(), listening()
    port_a, port_b = a.getsockname()[1], b.getsockname()[1]
    listen.inherit_sockets([(a.detach(), "a"), (b.detach(), "b")])
    # Listen names a: that socket, not a new bind (which would fail: in use); b is served too.
    cfg = SimpleNamespace(listen=[("127.0.0.1", port_a)], listen_backlog=8, listen_explicit=True)
    out = listen.bind_listeners(cfg)
    assert set(out) == {("127.0.0.1", port_a), ("127.0.0.1", port_b)}
    assert out[("127.0.0.1", port_a)] is listen._inherited[("127.0.0.1", port_a)]
    # No Listen line: the default address is not bound; the inherited ones serve.
    cfg = SimpleNamespace(listen=[("127.0.0.1", 8000)], listen_backlog=8, listen_explicit=False)
    again = listen.bind_listeners(cfg, out)
    assert set(again) == {("127.0.0.1", port_a), ("127.0.0.1", port_b)}
    assert all(s.fileno() != -1 for s in again.values())  # a restart never closes them


def test_a_descriptor_that_is_not_a_listening_socket_is_named(no_inherited, tmp_path):
    with open(tmp_path / "f", "w") as f:
        with pytest.raises(OSError, match=r"descriptor \d+ \(db\) is not a socket"):
            listen.inherit_sockets([(f.fileno(), "db")])
    with socket.socket() as unbound:
        with pytest.raises(OSError, match=r"\(x\) is not a listening stream socket"):
            listen.inherit_sockets([(unbound.fileno(), "x")])


# --- the real server under systemd's tools ----------------------------------------

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


@pytest.mark.external
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


# --- readiness ------------------------------------------------------------------------


def test_notify_ready_reloading_and_stopping(tmp_path, notify_socket, monkeypatch):
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    srv = Server("-w", "1", "--threads", "2", tmp_path=tmp_path)
    try:
        seen: list[str] = []
        srv.start(wait=False)
        receive_until(sock, "READY=1", seen)
        # READY=1 comes once a child serves, then a STATUS line from the scoreboard.
        status = receive_until(sock, "", [], 5)  # the next datagram
        assert status[-1].startswith("STATUS=1 child, ") and "idle threads" in status[-1]
        srv.wait_ready()
        for sig in (signal.SIGUSR1, signal.SIGHUP):
            seen = []
            srv.signal(sig)
            receive_until(sock, "READY=1", seen)
            reloading = [m for m in seen if "RELOADING=1" in m.split("\n")]
            assert reloading, seen
            usec = int(reloading[0].split("MONOTONIC_USEC=")[1].split("\n")[0])
            assert abs(usec - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 60_000_000
            assert seen.index(reloading[0]) < len(seen) - 1  # READY=1 after RELOADING=1
            srv.wait_ready()
        seen = []
        srv.signal(signal.SIGTERM)
        receive_until(sock, "STOPPING=1", seen)
        assert srv.wait_exit(15) == 0
    finally:
        srv.stop()


def test_the_example_units_say_what_the_readme_says():
    from tests.support.server import ROOT

    service = (ROOT / "conf" / "mpmserver.service").read_text()
    socket_unit = (ROOT / "conf" / "mpmserver.socket").read_text()
    assert "Type=notify" in service and "KillMode=mixed" in service
    assert "ExecReload=/bin/kill -USR1 $MAINPID" in service
    assert "ListenStream=" in socket_unit and "Accept=no" in socket_unit


# --- a binary upgrade under systemd ---------------------------------------------------


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


@pytest.mark.external
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
