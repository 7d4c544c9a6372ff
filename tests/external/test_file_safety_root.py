"""What a real server started as root does with links planted by its User, and with its files' modes."""

from __future__ import annotations

import grp
import os
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.request

import pytest

from tests.support.files import SMALL, account, planted_link, root_only, secret
from tests.support.server import ROOT, Server, wait_for

pytestmark = [pytest.mark.root]


def _run_refused(tmp_path, *args: str) -> Server:
    s = Server(*SMALL, *args, tmp_path=tmp_path, access_log=True)  # no --access-log off
    try:
        s.start(wait=False)
        code = s.wait_exit(20)
    finally:
        s.stop()
    assert code != 0, s.stderr
    return s


@root_only
def test_server_pid_file_link_is_replaced_not_written_through(tmp_path, server_factory):
    target, mtime = secret(tmp_path)
    pid_path = tmp_path / "mpmserver.pid"
    pid_path.symlink_to(target)  # root's own link, even: the PidFile never writes through one
    s = server_factory(*SMALL, "--pid-file", str(pid_path)).start()
    assert not pid_path.is_symlink() and pid_path.read_text() == f"{s.pid}\n"
    s.stop()
    assert not pid_path.exists()
    assert target.read_text() == "root's secret\n" and target.stat().st_mtime_ns == mtime


@root_only
@pytest.mark.parametrize("flag, what", [("--error-log", "error log file"),
                                        ("--custom-log", "access log file")])
def test_server_refuses_a_log_link_planted_by_another_user(tmp_path, flag, what):
    target, mtime = secret(tmp_path)
    link = planted_link(tmp_path, "planted.log", target)
    args = (flag, link) if flag == "--error-log" else (flag, link, "common")
    s = _run_refused(tmp_path, *args)
    assert f"{what} {link} is a symbolic link owned by uid {account('nobody').pw_uid}, not root" in s.stderr
    assert target.read_text() == "root's secret\n" and target.stat().st_mtime_ns == mtime


@root_only
def test_server_keeps_its_logs_when_a_restart_meets_a_planted_link(tmp_path, server_factory):
    target, mtime = secret(tmp_path)
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    s = server_factory(*SMALL, "--error-log", str(error_log), "--custom-log", str(access_log), "common",
                       "--log-level", "info", access_log=True).start()
    for p in (error_log, access_log):
        os.rename(p, str(p) + ".1")
        planted_link(tmp_path, p.name, target)
    s.signal(signal.SIGUSR1)
    wait_for(lambda: "keeping the open access logs" in (tmp_path / "error.log.1").read_text(), 10,
             what="the refused reopen to be logged")
    urllib.request.urlopen(s.url + "/hello", timeout=5).read()
    assert "keeping the open error log" in (tmp_path / "error.log.1").read_text()
    wait_for(lambda: "GET /hello" in (tmp_path / "access.log.1").read_text(), 5, what="the access line")
    assert target.read_text() == "root's secret\n" and target.stat().st_mtime_ns == mtime


@root_only
def test_server_warns_about_a_directory_the_user_can_write(tmp_path, server_factory):
    www = account("www-data")
    run = tmp_path / "run"
    run.mkdir()
    os.chown(run, www.pw_uid, www.pw_gid)
    s = server_factory(*SMALL, "--user", "www-data", "--pid-file", str(run / "mpm.pid"),
                       app="tests.apps.hostile_apps:app").start()
    assert f"PidFile {run / 'mpm.pid'}: directory {run} is owned by the User (uid {www.pw_uid})" in s.stderr
    assert "chown root" in s.stderr


@root_only
def test_server_does_not_warn_about_a_root_only_directory(tmp_path, server_factory):
    account("www-data")
    s = server_factory(*SMALL, "--user", "www-data", "--pid-file", str(tmp_path / "mpm.pid"),
                       app="tests.apps.hostile_apps:app").start()
    assert "PidFile" not in s.stderr, s.stderr


@root_only
def test_server_scoreboard_file_is_0640_group_readable_and_closed_to_others(server_factory):
    www = account("www-data")
    nobody = account("nobody")
    with tempfile.TemporaryDirectory(prefix="mpmserver-sb-") as d:
        os.chmod(d, 0o755)
        sb = os.path.join(d, "scoreboard")
        s = server_factory(*SMALL, "--user", "www-data", "--scoreboard-file", sb,
                           app="tests.apps.hostile_apps:app").start()
        st_ = os.stat(sb)
        assert (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid) == (0o640, 0, www.pw_gid)
        if nobody.pw_gid != www.pw_gid and nobody.pw_uid not in grp.getgrgid(www.pw_gid).gr_mem:
            r = subprocess.run([sys.executable, "-m", "mpmserver", "status", "--scoreboard-file", sb],
                               cwd=ROOT, capture_output=True, text=True, timeout=30, user=nobody.pw_uid,
                               group=nobody.pw_gid, extra_groups=[])
            assert r.returncode != 0 and "Permission denied" in r.stderr, r
        s.stop()
