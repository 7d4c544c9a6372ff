"""Broken code never stops a server that serves (issue 25, item 1).

An app that imported fine at start is replaced on disk by one that does not
import (a syntax error saved, a module gone), under steady load: keep-alive
clients and clients on new connections. Deployed by `-k graceful`, the
restart is abandoned and `-k graceful` exits 1 with the reason; a child that
exits meanwhile cannot be replaced and is retried with a back-off; saved
under `--reload`, the save is refused the same way; a HUP checks the app
before it stops anything. Through all of it no request fails and the old
code answers; then a fixed app deployed by `-k graceful` serves.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.load import Hammer
from tests.support.server import ROOT, Server, alive, free_port, wait_for
from tests.support.systemd import receive_until

APP = '''
def app(environ, start_response):
    body = b"version %d"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''
# Saved half-way through an edit: a syntax error at import.
BROKEN = APP.replace("def app(environ, start_response):", "def app(environ, start_response:")


@pytest.fixture
def source(request) -> Path:
    """A directory the children can read (they run as nobody under root) holding deployed_app.py."""
    src = Path(tempfile.mkdtemp(prefix="mpmserver-deploy-"))
    src.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(src, ignore_errors=True))
    deploy(src, APP % 1)
    return src


def deploy(src: Path, text: str) -> None:
    module = src / "deployed_app.py"
    module.write_text(text)
    module.chmod(0o644)


def start(src: Path, tmp_path: Path, *args: str, spec: str = "deployed_app:app") -> tuple[Server, Path]:
    port = free_port()
    conf = tmp_path / "deploy.conf"
    conf.write_text(f"Listen 127.0.0.1:{port}\nWSGIApp {spec}\nPythonPath {src}\n"
                    f"PidFile {tmp_path / 'mpm.pid'}\nErrorLog {tmp_path / 'error.log'}\n"
                    "FixedServers 2\nThreadsPerChild 4\nLogLevel info\n")
    # No .pyc: two saves within a second must never import a stale one.
    s = Server(*args, app=None, config=str(conf), port=port, tmp_path=tmp_path,
               env={"PYTHONDONTWRITEBYTECODE": "1"}).start()
    return s, conf


def error_log(tmp_path: Path) -> str:
    try:
        return (tmp_path / "error.log").read_text(errors="replace")
    except OSError:
        return ""


def mpm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpmserver", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=150, stdin=subprocess.DEVNULL)


def steady_load(port: int) -> list[Hammer]:
    return [Hammer(port, "/", keep_alive=True).start() for _ in range(3)] + \
           [Hammer(port, "/").start() for _ in range(3)]


def answered_since(hammers: list[Hammer], marks: list[int]) -> set[bytes]:
    return {b for h, n in zip(hammers, marks) for b in h.bodies[n:]}


def more_answers(hammers: list[Hammer], n: int = 5) -> list[int]:
    """Wait until every client got ``n`` more answers; the marks before."""
    marks = [len(h.bodies) for h in hammers]
    wait_for(lambda: all(len(h.bodies) >= m + n for h, m in zip(hammers, marks)), 15,
             what="every client to be answered")
    return marks


def failures(hammers: list[Hammer]) -> list[str]:
    return [f for h in hammers for f in h.failures]


def test_graceful_and_a_lost_child_with_broken_code_keep_the_old_code_serving(source, tmp_path):
    s, conf = start(source, tmp_path)
    hammers = steady_load(s.port)
    try:
        more_answers(hammers)
        deploy(source, BROKEN % 1)
        out = mpm("-k", "graceful", "-f", str(conf))
        assert out.returncode == 1, (out.stdout, out.stderr)
        assert "graceful restart failed, still serving generation 0" in out.stderr, out.stderr
        assert "SyntaxError" in out.stderr, out.stderr  # the reason, and the traceback from the error log
        marks = more_answers(hammers)
        assert answered_since(hammers, marks) == {b"version 1"}
        log = error_log(tmp_path)
        assert log.count("graceful restart failed, still serving generation 0") == 1, log[-3000:]
        assert log.count("Traceback (most recent call last)") == 1, log[-3000:]  # once, not per child
        assert "mpmserver is exiting" not in log

        # A child goes (recycled, or stopped): its replacement cannot import
        # the code on disk now, and is tried again after 1 s, then 2 s.
        lost = s.children()[0]
        os.kill(lost, signal.SIGUSR1)
        wait_for(lambda: not alive(lost), 15, what="the child to go")
        wait_for(lambda: "a new child is tried in 2 s" in error_log(tmp_path), 15, what="a second failed try")
        log = error_log(tmp_path)
        assert "a new child is tried in 1 s" in log and log.count("Traceback (most recent") == 2, log[-3000:]
        marks = more_answers(hammers)
        assert answered_since(hammers, marks) == {b"version 1"} and s.proc.poll() is None

        deploy(source, APP % 2)
        out = mpm("-k", "graceful", "-f", str(conf))
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert "generation 1 serves" in out.stdout
        # The old generation finishes what it had; then only the new code answers.
        wait_for(lambda: all(h.bodies[-1] == b"version 2" for h in hammers), 15, what="the new code to serve")
        marks = more_answers(hammers)
        assert answered_since(hammers, marks) == {b"version 2"}
    finally:
        for h in hammers:
            h.stop()
        s.stop()
    assert failures(hammers) == [], failures(hammers)[:5]


def test_a_child_killed_while_the_code_on_disk_is_broken_is_retried_and_the_server_serves_on(source, tmp_path):
    s, conf = start(source, tmp_path)
    victim = wait_for(lambda: len(s.children()) == 2 and s.children()[0], what="2 children")
    deploy(source, BROKEN % 1)
    # No client is connected: a killed child's own requests are lost with it, on any server.
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: "a new child is tried in 1 s" in error_log(tmp_path), 15, what="a failed replacement")
    hammers = steady_load(s.port)
    try:
        wait_for(lambda: "a new child is tried in 2 s" in error_log(tmp_path), 15, what="a second failed try")
        marks = more_answers(hammers)
        assert answered_since(hammers, marks) == {b"version 1"}
    finally:
        for h in hammers:
            h.stop()
    log = error_log(tmp_path)
    assert f"child pid {victim} exit signal Killed (9)" in log
    assert "mpmserver is exiting" not in log and s.proc.poll() is None
    s.stop()
    assert failures(hammers) == [], failures(hammers)[:5]


def test_a_broken_save_under_reload_keeps_the_previous_children_serving(source, tmp_path):
    s, conf = start(source, tmp_path, "--reload")
    hammers = steady_load(s.port)
    try:
        wait_for(lambda: "--reload: watching" in error_log(tmp_path), 10, what="the watcher to start")
        first = set(s.children())
        more_answers(hammers)
        deploy(source, BROKEN % 2)
        wait_for(lambda: "graceful restart failed, still serving generation 0" in error_log(tmp_path), 60,
                 what="the broken save to be refused")
        assert "SyntaxError" in error_log(tmp_path)
        marks = more_answers(hammers)
        assert answered_since(hammers, marks) == {b"version 1"}
        assert set(s.children()) >= first and s.proc.poll() is None
        deploy(source, APP % 3)
        wait_for(lambda: all(h.bodies[-1] == b"version 3" for h in hammers), 60, what="the fixed save to serve")
    finally:
        for h in hammers:
            h.stop()
        s.stop()
    assert failures(hammers) == [], failures(hammers)[:5]


def test_a_hup_with_an_app_that_does_not_load_keeps_serving(source, tmp_path):
    s, conf = start(source, tmp_path)
    first = set(wait_for(lambda: len(s.children()) == 2 and s.children(), what="2 children"))
    deploy(source, BROKEN % 1)
    s.signal(signal.SIGHUP)
    wait_for(lambda: "restart (HUP) failed, still serving generation 0" in error_log(tmp_path), 60,
             what="the HUP to be refused")
    assert "SyntaxError" in error_log(tmp_path)
    assert set(s.children()) == first  # checked before any child was stopped
    hammer = Hammer(s.port, "/").start()
    try:
        wait_for(lambda: hammer.ok >= 3, 10, what="answers")
    finally:
        hammer.stop()
    assert set(hammer.bodies) == {b"version 1"} and hammer.failures == []
    s.stop()


FACTORY = APP + '''

def create():
    if %r:
        raise RuntimeError("settings: DATABASE_URL is not set")
    return app
'''


def test_systemd_is_told_the_restart_failed(source, tmp_path, notify_socket, monkeypatch):
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    s, conf = start(source, tmp_path)
    try:
        receive_until(sock, "READY=1", [])
        deploy(source, BROKEN % 1)
        s.signal(signal.SIGUSR1)
        seen: list[str] = []
        receive_until(sock, "READY=1", seen)  # the reload is over...
        assert any("RELOADING=1" in m for m in seen), seen
        assert seen[-1].startswith("READY=1\nSTATUS=graceful restart failed, still serving generation 0: "
                                   "SyntaxError"), seen
        # ...and the status line keeps saying so.
        seen = []
        wait_for(lambda: receive_until(sock, "", seen, 5) and seen[-1].startswith(
            "STATUS=graceful restart failed, still serving generation 0: SyntaxError") and "children" in seen[-1],
            10, what="the status line")
    finally:
        s.stop()


def test_a_factory_that_raises_abandons_the_graceful_restart(source, tmp_path):
    deploy(source, FACTORY % (1, False))
    s, conf = start(source, tmp_path, spec="deployed_app:create()")
    hammer = Hammer(s.port, "/", keep_alive=True).start()
    try:
        wait_for(lambda: hammer.ok >= 3, 10, what="answers")
        deploy(source, FACTORY % (2, True))
        out = mpm("-k", "graceful", "-f", str(conf))
        assert out.returncode == 1
        assert ("graceful restart failed, still serving generation 0: RuntimeError: settings: DATABASE_URL "
                "is not set") in out.stderr, out.stderr
        marks = more_answers([hammer])
        assert answered_since([hammer], marks) == {b"version 1"}
    finally:
        hammer.stop()
        s.stop()
    assert hammer.failures == []


def test_a_server_that_cannot_start_still_exits_with_the_traceback(tmp_path):
    s = Server("-w", "2", app="tests.apps.broken:app", tmp_path=tmp_path)
    s.start(wait=False)
    assert s.wait_exit(30) != 0
    assert "this app module is broken on purpose" in s.stderr
    assert "mpmserver is exiting!" in s.stderr


def test_k_graceful_while_the_server_drains_says_so(source, tmp_path):
    s, conf = start(source, tmp_path, "--graceful-stop-drain", "60")
    try:
        s.signal(signal.SIGWINCH)
        wait_for(lambda: "draining for 60 s" in error_log(tmp_path), 10, what="the drain to begin")
        out = mpm("-k", "graceful", "-f", str(conf))
        assert out.returncode == 1
        assert "still serving generation 0: not restarted: the server is draining" in out.stderr, out.stderr
    finally:
        s.stop()


def test_a_stop_during_a_hups_check_of_a_slow_import_is_not_held_up(source, tmp_path):
    s, conf = start(source, tmp_path)
    deploy(source, "import time\ntime.sleep(60)\n" + APP % 2)  # an import that takes a minute
    s.signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP received" in error_log(tmp_path), 10, what="the HUP")
    s.signal(signal.SIGTERM)
    assert s.wait_exit(20) == 0
    assert "caught SIGTERM, shutting down" in error_log(tmp_path)
