"""Zero-downtime binary upgrade (USR2, -k upgrade) and signals the master ignores (issue 13, item 3).

The takeover's data (upgrade.py) is tested as data; the mechanism with real
servers: USR2 under steady load loses no request and every pid changes, a
new master that cannot start leaves the old one serving with its PidFile
back, `mpmserver -k upgrade` reports either outcome, and a signal the master
does not act on is logged and ignored.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpmserver.deploy import upgrade
from tests.support.load import Hammer
from tests.support.server import ROOT, alive, children_of, free_port, wait_for

# --- the takeover, as data ------------------------------------------------------


def test_new_master_environ_passes_sockets_systemd_style_and_says_which_are_ours():
    env = upgrade.new_master_environ({"PATH": "/bin", "LISTEN_FDS": "9", upgrade.ENV: "stale"}, 42,
                                     ["web", "upgrade", "upgrade"], [1, 2], 7, 12, 13, "@notify")
    assert env["PATH"] == "/bin" and env["NOTIFY_SOCKET"] == "@notify"
    assert (env["LISTEN_FDS"], env["LISTEN_PID"], env["LISTEN_FDNAMES"]) == ("3", "42", "web:upgrade:upgrade")
    assert upgrade.take_environ(env) == upgrade.Inherited(7, 12, frozenset({4, 5}), 13)
    assert upgrade.ENV not in env  # unset: the app and the next upgrade never misread it
    assert upgrade.take_environ({}) is None


def test_no_sockets_and_a_garbled_variable():
    env = upgrade.new_master_environ({}, 42, [], [], 7, 12)
    assert "LISTEN_FDS" not in env
    assert upgrade.take_environ(env) == upgrade.Inherited(7, 12, frozenset(), -1)
    with pytest.raises(ValueError, match="is not what an mpmserver master passes"):
        upgrade.take_environ({upgrade.ENV: "pid=x"})


def test_command_line_and_ready_message():
    assert upgrade.command_line("/usr/bin/python3", ["python", "-m", "mpmserver", "-f", "a.conf"]) == \
        ["/usr/bin/python3", "-m", "mpmserver", "-f", "a.conf"]
    assert upgrade.served_by(upgrade.ready_message(123)) == 123
    assert upgrade.served_by(b"") is None and upgrade.served_by(b"okay") is None
    assert upgrade.oldbin_path("/run/m.pid") == "/run/m.pid.oldbin"


@pytest.mark.parametrize("pid_file, alive_pids, state", [
    ((10, 1), {10}, "waiting"),             # not renamed yet
    (None, {10}, "waiting"),                # renamed, the new one not written yet
    ((11, 2), {10, 11}, "waiting"),         # the new one runs, the old one still finishing
    ((11, 2), {11}, "done"),
    ((10, 3), {10}, "rolled back"),         # the old master wrote its PidFile anew
    ((10, 1), set(), "failed"),
    (None, set(), "failed"),
    ((11, 2), {10}, "waiting"),             # the new one is gone: the old one will roll back
])
def test_outcome(pid_file, alive_pids, state):
    pids = {10, 11}
    assert upgrade.outcome(10, 1, pid_file, {p: p in alive_pids for p in pids})[0] == state


# --- with real servers -------------------------------------------------------------


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def stop_master(pid: int) -> None:
    """Stop a master that is not the test's child (the new one of an upgrade)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_for(lambda: not alive(pid), 15, 0.05, f"master {pid} to exit")


def config(tmp_path: Path, port: int, app: str = "tests.apps.basic:app", extra: str = "") -> Path:
    conf = tmp_path / "mpm.conf"
    conf.write_text(f"Listen 127.0.0.1:{port}\nPidFile {tmp_path / 'mpm.pid'}\nWSGIApp {app}\n"
                    f"ErrorLog {tmp_path / 'error.log'}\nFixedServers 2\nThreadsPerChild 4\n"
                    f"LogLevel info\n{extra}")
    return conf


def mpmserver(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpmserver", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_usr2_under_steady_load_loses_no_request_and_every_pid_changes(server_factory, tmp_path):
    pid_file = tmp_path / "mpm.pid"
    srv = server_factory("-w", "2", "--threads", "4", "--pid-file", str(pid_file), "--log-level", "info").start()
    old_master, old_children = srv.pid, set(srv.children())
    hammers = [Hammer(srv.port, "/pid").start() for _ in range(3)] + \
              [Hammer(srv.port, "/pid", keep_alive=True).start() for _ in range(3)]
    try:
        wait_for(lambda: all(h.ok for h in hammers), 10, what="every client to be answered")
        srv.signal(signal.SIGUSR2)
        wait_for(lambda: (pid_file.parent / "mpm.pid.oldbin").exists() or read_pid(pid_file) != old_master,
                 10, what="the PidFile to be renamed")
        assert srv.wait_exit(30) == 0  # the old master stops once the new one serves
        new_master = read_pid(pid_file)
        assert new_master not in (None, old_master) and alive(new_master)
        assert not (pid_file.parent / "mpm.pid.oldbin").exists()
        marks = [len(h.bodies) for h in hammers]
        wait_for(lambda: all(len(h.bodies) > n + 5 for h, n in zip(hammers, marks)), 15,
                 what="every client to be answered by the new master's children")
    finally:
        for h in hammers:
            h.stop()
    try:
        new_children = set(children_of(new_master))
        assert new_children and not new_children & old_children
        served_after = {pid for h, n in zip(hammers, marks) for pid in Hammer.pids(_Tail(h, n))}
        assert served_after <= new_children
        failures = [f for h in hammers for f in h.failures]
        assert failures == [], failures[:5]
        assert "binary upgrade: the new master" in srv.stderr and "this one stops gracefully" in srv.stderr
    finally:
        stop_master(new_master)
    assert not pid_file.exists(), "the new master removes its PidFile when it exits"


class _Tail:
    """The bodies a Hammer got after the n-th (for Hammer.pids)."""

    def __init__(self, hammer: Hammer, n: int):
        self.bodies = hammer.bodies[n:]


def test_a_new_master_with_a_broken_config_rolls_back(server_factory, tmp_path):
    port = free_port()
    conf = config(tmp_path, port)
    srv = server_factory(config=str(conf), app=None, port=port).start()
    pid_file = tmp_path / "mpm.pid"
    inode = pid_file.stat().st_ino
    conf.write_text(conf.read_text() + "ThreadPerChild 4\n")  # misspelled: the new master refuses it
    srv.signal(signal.SIGUSR2)
    log = tmp_path / "error.log"
    wait_for(lambda: "binary upgrade failed" in log.read_text(), 20, 0.05, "the rollback")
    text = log.read_text()
    # The new master's reason, on the standard error it shares with the old one.
    assert "Invalid directive 'ThreadPerChild'" in srv.stderr
    assert f"rolled back, pid {srv.pid} serves on" in text
    assert read_pid(pid_file) == srv.pid and pid_file.stat().st_ino != inode
    assert not (tmp_path / "mpm.pid.oldbin").exists()
    assert srv.proc.poll() is None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")


def test_k_upgrade_reports_success_then_a_rollback(server_factory, tmp_path):
    sock_path = tmp_path / "app.sock"
    port = free_port()
    agent_port = free_port()
    conf = config(tmp_path, port, extra=f"Listen unix:{sock_path}\nAgentListen 127.0.0.1:{agent_port}\n")
    srv = server_factory(config=str(conf), app=None, port=port).start()
    done = mpmserver("-k", "upgrade", "-f", str(conf))
    assert done.returncode == 0, done.stderr
    new_master = read_pid(tmp_path / "mpm.pid")
    assert f"upgraded: pid {srv.pid} -> pid {new_master}" in done.stdout
    try:
        assert srv.wait_exit(10) == 0
        # The unix socket was taken over too: its file stays, and it serves.
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(sock_path))
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        # And the AgentListen socket: the new master answers on it.
        with socket.create_connection(("127.0.0.1", agent_port), timeout=5) as s:
            assert s.recv(100).startswith(b"up ready ")
        # Now an app that does not import: the new master exits, the old one stays.
        conf.write_text(conf.read_text().replace("tests.apps.basic:app", "tests.apps.no_such_module:app"))
        failed = mpmserver("-k", "upgrade", "-f", str(conf))
        assert failed.returncode == 1
        assert f"upgrade rolled back: the new master did not start; pid {new_master} still serves" in failed.stderr
        assert "No module named 'tests.apps.no_such_module'" in failed.stderr  # from the error log
        assert alive(new_master) and read_pid(tmp_path / "mpm.pid") == new_master
    finally:
        stop_master(new_master)
    assert not sock_path.exists(), "the master that owns the unix socket removes its file at exit"


@pytest.mark.parametrize("sig", [signal.SIGPWR, signal.SIGQUIT, signal.SIGALRM])
def test_a_signal_the_master_does_not_act_on_is_logged_and_ignored(server_factory, sig):
    srv = server_factory("-w", "1", "--threads", "2").start()
    children = srv.children()
    srv.signal(sig)
    wait_for(lambda: f"caught {sig.name}: not a signal the master acts on, ignored" in srv.stderr, 5,
             what="the log line")
    time.sleep(0.3)
    assert srv.proc.poll() is None and srv.children() == children
    srv.wait_ready()

