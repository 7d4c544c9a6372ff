"""Signals, -k verbs, -t, PidFile: controlling the server as apachectl does."""

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.client import get
from tests.support.server import ROOT, Server, alive, free_port, read_response, wait_for

SMALL = ("--start-servers", "2", "--threads-per-child", "2", "--min-spare-threads", "1",
         "--max-spare-threads", "8", "--max-request-workers", "8")


def slow_request(port: int, path: bytes, results: list) -> threading.Thread:
    """Start a request in a thread; its (status, body) or exception lands in results."""
    def run():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
                status, headers, body, _ = read_response(s)
                results.append((status, body))
        except Exception as exc:  # noqa: BLE001
            results.append(exc)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def wait_busy(server: Server, tmp_path: Path) -> None:
    # The slow request has reached a worker once the app's response is pending;
    # the scoreboard shows the thread busy.
    from mpmserver.scoreboard import SERVER_BUSY_WRITE, Scoreboard

    sb = Scoreboard.attach(str(tmp_path / "sb"))
    try:
        wait_for(lambda: sb.snapshot().count_status(SERVER_BUSY_WRITE) >= 1, 10, what="a busy worker")
    finally:
        sb.close(remove=False)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_term_and_int_stop_everything(server_factory, sig):
    s = server_factory(*SMALL).start()
    kids = wait_for(lambda: len(s.children()) == 2 and s.children(), what="2 children")
    s.signal(sig)
    assert s.wait_exit(15) == 0
    for pid in kids:
        wait_for(lambda: not alive(pid), 5, what=f"child {pid} to exit")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()


def test_winch_graceful_stop_finishes_inflight_request(server_factory, tmp_path):
    s = server_factory(*SMALL, "--scoreboard-file", str(tmp_path / "sb")).start()
    results: list = []
    t = slow_request(s.port, b"/slowbody?t=1.5", results)
    wait_busy(s, tmp_path)
    s.signal(signal.SIGWINCH)
    t.join(20)
    assert results and not isinstance(results[0], Exception), results
    status, body = results[0]
    assert status == 200 and len(body) == 10030
    assert s.wait_exit(15) == 0


def test_hup_restarts_children_and_rereads_config(server_factory, tmp_path):
    port = free_port()
    conf = write_conf(tmp_path, port)
    s = server_factory(app=None, config=str(conf), port=port).start()
    old = set(wait_for(lambda: s.children(), what="a child"))
    conf.write_text(conf.read_text().replace("StartServers 1", "StartServers 3"))
    s.signal(signal.SIGHUP)
    wait_for(lambda: (set(s.children()) - old) if len(set(s.children()) - old) == 3 else None,
             15, what="3 new children after HUP")
    assert not (set(s.children()) & old)
    assert get(port)[0] == 200
    assert s.proc.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1], ids=["HUP", "USR1"])
def test_hup_with_broken_config_keeps_serving(server_factory, tmp_path, sig):
    port = free_port()
    conf = write_conf(tmp_path, port)
    s = server_factory(app=None, config=str(conf), port=port).start()
    old = set(wait_for(lambda: s.children(), what="a child"))
    conf.write_text(conf.read_text() + "ThreadsPerChild lots\n")
    bad_line = conf.read_text().count("\n")
    s.signal(sig)
    wait_for(lambda: "keeping the running configuration" in s.stderr, 10, what="the config error in the log")
    assert "ThreadsPerChild" in s.stderr and f"line {bad_line}" in s.stderr
    if sig == signal.SIGHUP:
        # HUP restarts now, as Apache's restart does: the old children are
        # stopped (a connection one of them took is cut) and new ones start
        # with the running configuration.
        wait_for(lambda: s.children() and not set(s.children()) & old, 15, what="the old children replaced")
    else:
        # A graceful restart with a bad configuration is not made: the same children serve.
        assert set(s.children()) == old
    assert get(port)[0] == 200 and s.proc.poll() is None


def test_usr1_graceful_restart_lets_old_child_finish(server_factory, tmp_path):
    s = server_factory(*SMALL, "--scoreboard-file", str(tmp_path / "sb")).start()
    old = set(wait_for(lambda: len(s.children()) == 2 and s.children(), what="2 children"))
    results: list = []
    t = slow_request(s.port, b"/slowbody?t=2", results)
    wait_busy(s, tmp_path)
    s.signal(signal.SIGUSR1)
    # New children serve while the old one is still finishing the slow response.
    wait_for(lambda: set(s.children()) - old, 10, what="a new-generation child")
    assert get(s.port)[0] == 200
    t.join(20)
    assert results and not isinstance(results[0], Exception), results
    assert results[0][0] == 200 and len(results[0][1]) == 10030
    wait_for(lambda: not (set(s.children()) & old), 15, what="old children to exit")
    assert s.proc.poll() is None


def write_conf(tmp_path: Path, port: int, extra: str = "") -> Path:
    conf = tmp_path / "ctl.conf"
    conf.write_text(
        f"Listen 127.0.0.1:{port}\nWSGIApp tests.apps.basic:app\nPidFile {tmp_path / 'mpm.pid'}\n"
        "StartServers 1\nThreadsPerChild 2\nMinSpareThreads 1\nMaxSpareThreads 8\nMaxRequestWorkers 8\n" + extra)
    return conf


def mpm(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpmserver", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_pidfile_written_after_bind_and_removed_on_exit(server_factory, tmp_path):
    port = free_port()
    conf = write_conf(tmp_path, port)
    s = server_factory(app=None, config=str(conf), port=port).start()
    pidfile = tmp_path / "mpm.pid"
    assert int(pidfile.read_text()) == s.pid
    s.signal(signal.SIGTERM)
    s.wait_exit(15)
    assert not pidfile.exists()


def test_k_verbs_signal_the_master(server_factory, tmp_path):
    port = free_port()
    conf = write_conf(tmp_path, port)
    s = server_factory(app=None, config=str(conf), port=port).start()
    first = set(wait_for(lambda: s.children(), what="a child"))
    assert mpm("-k", "graceful", "-f", str(conf)).returncode == 0
    wait_for(lambda: set(s.children()) - first, 10, what="a new child after -k graceful")
    second = set(s.children())
    assert mpm("-k", "restart", "-f", str(conf)).returncode == 0
    wait_for(lambda: s.children() and not (set(s.children()) & second), 15, what="children replaced by -k restart")
    assert mpm("-k", "stop", "-f", str(conf)).returncode == 0
    assert s.wait_exit(15) == 0


def test_k_graceful_stop(server_factory, tmp_path):
    port = free_port()
    conf = write_conf(tmp_path, port)
    s = server_factory(app=None, config=str(conf), port=port).start()
    assert mpm("-k", "graceful-stop", "-f", str(conf)).returncode == 0
    assert s.wait_exit(15) == 0


def test_k_without_running_server_says_so(tmp_path):
    conf = write_conf(tmp_path, free_port())
    out = mpm("-k", "stop", "-f", str(conf))
    assert out.returncode == 1 and "PidFile" in out.stderr and "running" in out.stderr


def start_detached(tmp_path: Path, extra: str = "") -> tuple[subprocess.CompletedProcess, int]:
    """-k start a server, check it serves, -k stop it; (the -k start run, the daemon's pid)."""
    port = free_port()
    conf = write_conf(tmp_path, port, extra)
    out = mpm("-k", "start", "-f", str(conf))
    assert out.returncode == 0
    pidfile = tmp_path / "mpm.pid"
    try:
        pid = wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() and int(pidfile.read_text()),
                       15, what="the PidFile")
        wait_for(lambda: _answers(port), 15, what="the daemon to serve")
    finally:
        mpm("-k", "stop", "-f", str(conf))
    wait_for(lambda: not alive(pid), 15, what="the daemon to stop")
    return out, pid


def test_k_start_runs_in_background(tmp_path):
    start_detached(tmp_path)


def test_k_start_without_error_log_logs_beside_the_pidfile(tmp_path):
    out, pid = start_detached(tmp_path, "LogLevel notice\n")
    log = tmp_path / "mpmserver-error.log"
    assert str(log) in out.stdout  # named before the server detaches
    text = log.read_text()
    assert f"(pid {pid}) serving tests.apps.basic:app" in text and "caught SIGTERM, shutting down" in text


def _answers(port):
    try:
        return get(port)[0] == 200
    except OSError:
        return False


def test_t_syntax_ok_and_errors(tmp_path):
    good = write_conf(tmp_path, free_port())
    out = mpm("-t", "-f", str(good))
    assert out.returncode == 0 and out.stdout.strip() == "Syntax OK"
    bad = tmp_path / "bad.conf"
    bad.write_text("Listen 127.0.0.1:8080\n\nThreadsPerChlid 4\n")
    out = mpm("-t", "-f", str(bad))
    assert out.returncode == 1
    assert "line 3" in out.stderr and str(bad) in out.stderr and "ThreadsPerChlid" in out.stderr
    assert "ThreadsPerChild" in out.stderr  # the suggestion


def test_bad_directive_value_prevents_start(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("StartServers many\n")
    out = mpm("-f", str(bad))
    assert out.returncode == 1 and "line 1" in out.stderr and "StartServers" in out.stderr


def test_sample_config_runs(tmp_path):
    text = (ROOT / "conf" / "mpmserver.conf").read_text()
    port = free_port()
    conf = tmp_path / "sample.conf"
    conf.write_text(text.replace("Listen 127.0.0.1:8000", f"Listen 127.0.0.1:{port}"))
    assert mpm("-t", "-f", str(conf)).stdout.strip() == "Syntax OK"
    s = Server(app=None, config=str(conf), port=port, tmp_path=tmp_path)
    try:
        s.start()
        status, body = get(port, "/")
        assert status == 200 and b"It works!" in body
        wait_for(lambda: '"GET / HTTP/1.1" 200' in s.stdout, 5, what="the access log line on stdout")
    finally:
        s.stop()


def test_cli_serves_demo_app_and_logs_requests(tmp_path):
    s = Server(app=None, tmp_path=tmp_path, access_log=True)
    try:
        s.start()
        status, body = get(s.port, "/")
        assert status == 200 and b"It works!" in body
        wait_for(lambda: '"GET / HTTP/1.1" 200' in s.stdout, 5, what="the access log line on stdout")
    finally:
        s.stop()


def test_bind_failure_is_reported(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = mpm("--listen", f"127.0.0.1:{port}", "tests.apps.basic:app")
    assert out.returncode == 1 and "could not bind" in out.stderr and str(port) in out.stderr


def test_python_m_and_console_script_agree():
    out = mpm("--version")
    assert out.returncode == 0 and out.stdout.startswith("mpmserver/")
    # The `mpmserver` script pip installed beside this Python (pyproject's
    # [project.scripts]), run as a user would: the same answer.
    script = Path(sys.executable).parent / "mpmserver"
    assert script.exists(), f"no console script at {script}: pip install -e '.[test]' installs it"
    by_script = subprocess.run([str(script), "--version"], cwd=ROOT, capture_output=True, text=True, timeout=20,
                               stdin=subprocess.DEVNULL)
    assert (by_script.returncode, by_script.stdout, by_script.stderr) == (0, out.stdout, out.stderr)


# -- what the server says, whatever LogLevel (issue 14) --------------------------

def test_startup_and_shutdown_lines_whatever_the_log_level(server_factory):
    s = server_factory("--fixed-servers", "2", "--threads", "3", "--log-level", "error").start()
    line = wait_for(lambda: [ln for ln in s.stderr.splitlines() if " serving " in ln], 10,
                    what="the start-up line")[0]
    assert f"serving tests.apps.basic:app on http://127.0.0.1:{s.port}; 2 children x 3 threads (fixed)" in line
    s.signal(signal.SIGTERM)
    assert s.wait_exit(15) == 0
    assert "caught SIGTERM, shutting down" in s.stderr and "mpmserver exiting" in s.stderr


def test_k_start_reports_a_bad_app_on_the_terminal_and_exits_non_zero(tmp_path):
    conf = write_conf(tmp_path, free_port()).read_text().replace("tests.apps.basic:app", "tests.apps.broken:app")
    (tmp_path / "ctl.conf").write_text(conf)
    out = mpm("-k", "start", "-f", str(tmp_path / "ctl.conf"), timeout=60)
    assert out.returncode == 1, out
    assert "failed to start" in out.stderr and "this app module is broken on purpose" in out.stderr
    assert "started in the background" not in out.stdout
    assert not (tmp_path / "mpm.pid").exists()


def test_k_start_reports_an_address_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = mpm("-k", "start", "-f", str(write_conf(tmp_path, port)), timeout=60)
    assert out.returncode == 1, out
    assert "could not bind" in out.stderr and str(port) in out.stderr
