"""systemd: socket activation and readiness notification (systemd.py, systemd_notify.py, listen.py).

The protocol's pure parts are tested as data; the mechanism with real
sockets: a datagram socket the test listens on as NOTIFY_SOCKET. systemd's
own systemd-socket-activate passing the listening sockets is
tests/external/test_systemd_activation.py.
"""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest

from mpmserver.deploy import listen, systemd
from mpmserver.deploy.systemd_notify import Notifier, Supervisor
from tests.support.systemd import receive_until

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
    sup.restart_failed("graceful restart failed, still serving generation 0: the configuration does not load")
    sup.stopping()
    sup.stopping()
    got = []
    receive_until(sock, "STOPPING=1", got, 5)
    assert got[0] == "READY=1"
    assert got[1].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert got[2] == ("READY=1\nSTATUS=graceful restart failed, still serving generation 0: "
                      "the configuration does not load")
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

# --- readiness ------------------------------------------------------------------------


def test_the_example_units_say_what_the_readme_says():
    from tests.support.server import ROOT

    service = (ROOT / "conf" / "mpmserver.service").read_text()
    socket_unit = (ROOT / "conf" / "mpmserver.socket").read_text()
    assert "Type=notify" in service and "KillMode=mixed" in service
    assert "ExecReload=/bin/kill -USR1 $MAINPID" in service
    assert "ListenStream=" in socket_unit and "Accept=no" in socket_unit
    # Where the app lives, and who runs it: what the user edits (issue 26).
    assert "\nWorkingDirectory=/srv/mysite\n" in service
    # User=/Group= are left for the user to choose, with what nobody cannot do.
    assert "\n#User=www-data\n#Group=www-data\n" in service and "sqlite database" in service


# --- a binary upgrade under systemd ---------------------------------------------------


