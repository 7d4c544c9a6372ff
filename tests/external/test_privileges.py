"""Issue 4 over real processes: the children's privilege drop (mod_unixd).

These need root (as on CI) and are skipped otherwise. Ids are read from
/proc/<pid>/status, which shows real, effective, saved and filesystem ids.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import subprocess
import sys
import tempfile

import pytest

from tests.support.client import get_json
from tests.support.server import ROOT, Server, wait_for

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="privilege-drop tests need root")]

APP = "tests.apps.hostile_apps:app"
SMALL = ("--start-servers", "2", "--threads-per-child", "2", "--min-spare-threads", "1",
         "--max-spare-threads", "16", "--max-request-workers", "8")


def account(name: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"no user {name!r} on this machine")
    return entry.pw_uid, entry.pw_gid


def proc_ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, fs) and Groups of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(v) for v in value.split()]
    return out


def expected_groups(user: str, gid: int) -> list[int]:
    # initgroups(user, gid): gid plus every group listing the user as a member.
    return sorted({gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem})


def free_privileged_port() -> int:
    for port in range(1000, 1024):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 1000-1023")


def master_children(s: Server, n: int) -> list[int]:
    return wait_for(lambda: len(s.children()) >= n and s.children(), 15, what=f"{n} children")


def dropped_ids(pid: int, uid: int) -> dict[str, list[int]]:
    """The ids of a child once it has dropped privileges: a child just forked
    is still root (Uid 0 0 0 0) until it calls setuid."""
    def read():
        ids = proc_ids(pid)
        return ids if ids["Uid"][0] == uid else None
    return wait_for(read, 15, what=f"child {pid} to drop to uid {uid}")


def test_children_run_as_user_and_group_with_its_supplementary_groups(server_factory):
    uid, _ = account("www-data")
    gid = grp.getgrnam("www-data").gr_gid
    s = server_factory(*SMALL, "--user", "www-data", "--group", "www-data", app=APP).start()
    for pid in master_children(s, 2):
        ids = dropped_ids(pid, uid)
        assert ids["Uid"] == [uid] * 4, ids
        assert ids["Gid"] == [gid] * 4, ids
        assert sorted(ids["Groups"]) == expected_groups("www-data", gid), ids
    master = proc_ids(s.pid)
    assert master["Uid"][0] == 0, "the master keeps root (to bind and reopen logs)"


def test_numeric_user_and_group(server_factory):
    uid, _ = account("www-data")
    nobody_gid = grp.getgrnam("nogroup").gr_gid if _has_group("nogroup") else account("nobody")[1]
    s = server_factory(*SMALL, "--user", f"#{uid}", "--group", f"#{nobody_gid}", app=APP).start()
    for pid in master_children(s, 2):
        ids = dropped_ids(pid, uid)
        assert ids["Uid"] == [uid] * 4 and ids["Gid"] == [nobody_gid] * 4, ids
        assert 0 not in ids["Groups"], ids


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_app_code_sees_the_dropped_ids(server_factory):
    uid, _ = account("www-data")
    gid = grp.getgrnam("www-data").gr_gid
    s = server_factory(*SMALL, "--user", "www-data", "--group", "www-data", app=APP).start()
    seen = get_json(s.port, "/whoami")
    assert seen["resuid"] == [uid] * 3
    assert seen["resgid"] == [gid] * 3
    assert 0 not in seen["groups"]


def test_root_master_without_user_gives_children_nobody_and_warns(server_factory):
    uid, _ = account("nobody")
    s = server_factory(*SMALL, app=APP).start()
    assert get_json(s.port, "/whoami")["resuid"] == [uid] * 3
    assert "without a User directive" in s.stderr and "nobody" in s.stderr


def test_app_is_loaded_after_the_drop_by_default(server_factory):
    uid, _ = account("www-data")
    s = server_factory(*SMALL, "--user", "www-data", app="tests.apps.hostile_import_ids:app").start()
    seen = get_json(s.port, "/import-ids")
    assert seen["imported_as"]["resuid"] == [uid] * 3
    assert "PreloadApp" not in s.stderr


def test_preload_app_loads_in_the_root_master_and_warns(server_factory):
    uid, _ = account("www-data")
    s = server_factory(*SMALL, "--user", "www-data", "--preload-app", "on",
                       app="tests.apps.hostile_import_ids:app").start()
    seen = get_json(s.port, "/import-ids")
    assert seen["imported_as"]["resuid"] == [0, 0, 0]  # once, in the master
    assert seen["running_as"] == [uid] * 3  # but requests still run as the User
    assert "PreloadApp On with a root master" in s.stderr


def test_a_privileged_port_is_served_by_unprivileged_children(server_factory):
    uid, _ = account("www-data")
    port = free_privileged_port()
    server_factory(*SMALL, "--user", "www-data", app=APP, port=port).start()
    assert get_json(port, "/whoami")["resuid"] == [uid] * 3


def test_config_file_with_privileged_listen_and_user(tmp_path):
    # The "done when": a config file with a port below 1024 and User www-data.
    uid, _ = account("www-data")
    port = free_privileged_port()
    conf = tmp_path / "mpmserver.conf"
    conf.write_text(f"WSGIApp {APP}\nListen 127.0.0.1:{port}\nUser www-data\nGroup www-data\n"
                    "StartServers 1\nThreadsPerChild 2\nMinSpareThreads 1\nMaxSpareThreads 8\n"
                    "MaxRequestWorkers 4\n")
    s = Server(app=None, config=str(conf), tmp_path=tmp_path, port=port)
    try:
        s.start()
        assert get_json(port, "/whoami")["resuid"] == [uid] * 3
    finally:
        s.stop()


@pytest.mark.parametrize("user, message", [
    ("no-such-user-mpm", "no such user"),
    ("#0", "as root"),
    ("root", "as root"),
])
def test_bad_user_fails_at_start_with_a_clear_message(tmp_path, user, message):
    s = Server(*SMALL, "--user", user, app=APP, tmp_path=tmp_path)
    try:
        s.start(wait=False)
        code = s.wait_exit(20)
    finally:
        s.stop()
    assert code != 0
    assert message in s.stderr, s.stderr
    assert user.lstrip("#") in s.stderr


def test_bad_group_fails_at_start_with_a_clear_message(tmp_path):
    s = Server(*SMALL, "--user", "nobody", "--group", "no-such-group-mpm", app=APP, tmp_path=tmp_path)
    try:
        s.start(wait=False)
        code = s.wait_exit(20)
    finally:
        s.stop()
    assert code != 0
    assert "no-such-group-mpm" in s.stderr and "no such group" in s.stderr


def test_config_test_refuses_root_user(tmp_path):
    conf = tmp_path / "root.conf"
    conf.write_text(f"WSGIApp {APP}\nListen 127.0.0.1:8123\nUser root\n")
    r = subprocess.run([sys.executable, "-m", "mpmserver", "-t", "-f", str(conf)], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "refusing to run children as root" in out, out


def test_child_that_cannot_start_after_the_drop_stops_the_master(tmp_path, monkeypatch):
    # A child start that fails after the drop (here: the app refuses to load
    # unprivileged) is fatal: the master says why and exits, it does not
    # respawn children in a loop.
    monkeypatch.setenv("HOSTILE_REFUSE_UNPRIVILEGED", "1")
    s = Server(*SMALL, "--user", "www-data", app="tests.apps.hostile_import_ids:app", tmp_path=tmp_path)
    try:
        s.start(wait=False)
        code = s.wait_exit(30)
    finally:
        s.stop()
    assert code != 0
    assert "refusing to load without root" in s.stderr
    assert "Fatal error" in s.stderr and "exiting" in s.stderr, s.stderr[-2000:]
    assert s.stderr.count("refusing to load without root") <= 2 * 2, "children were respawned"


def test_scoreboard_file_is_readable_by_the_user_for_mpmserver_status(server_factory):
    uid, gid = account("www-data")
    # pytest's tmp dirs are 0700 root: the User could not even reach the file.
    with tempfile.TemporaryDirectory(prefix="mpmserver-sb-") as d:
        os.chmod(d, 0o755)
        sb = os.path.join(d, "scoreboard")
        s = server_factory(*SMALL, "--user", "www-data", "--scoreboard-file", sb, app=APP).start()
        assert get_json(s.port, "/whoami")
        r = _status_as(uid, gid, sb)
        s.stop()
    assert r.returncode == 0, r.stderr
    assert "IdleWorkers" in r.stdout or "Scoreboard" in r.stdout, r.stdout


def _status_as(uid: int, gid: int, sb: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpmserver", "status", "--scoreboard-file", sb],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, user=uid, group=gid,
                          extra_groups=[])


SQLITE_APP = '''import sqlite3


def application(environ, start_response):
    # What a fresh Django project's admin login does: write its sqlite file.
    try:
        with sqlite3.connect("db.sqlite3") as db:
            db.execute("INSERT INTO hits VALUES (1)")
        status, body = "200 OK", b"written"
    except sqlite3.OperationalError as exc:
        status, body = "500 Internal Server Error", str(exc).encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_root_without_user_says_what_nobody_cannot_write(server_factory, request):
    """The trap of issue 26: a project owned by root, children as nobody,
    its sqlite database read-only. The start-up warning names it and the
    fix; with that fix (User www-data owning the project) the write works."""
    import shutil
    import sqlite3

    uid, gid = account("www-data")
    project = tempfile.mkdtemp(prefix="mpmserver-sqlite-")
    request.addfinalizer(lambda: shutil.rmtree(project, ignore_errors=True))
    os.chmod(project, 0o755)
    with open(os.path.join(project, "sqliteapp.py"), "w") as f:
        f.write(SQLITE_APP)
    with sqlite3.connect(os.path.join(project, "db.sqlite3")) as db:
        db.execute("CREATE TABLE hits (n INTEGER)")
    for name in os.listdir(project):
        os.chmod(os.path.join(project, name), 0o644)
    s = server_factory(*SMALL, "--chdir", project, app="sqliteapp").start()
    status = get_status_and_body(s.port)
    assert status == (500, b"attempt to write a readonly database")
    assert "children will run as nobody" in s.stderr
    assert "cannot write the project's files, uploads or its sqlite database" in s.stderr
    assert "'User www-data' and 'Group www-data' in the configuration" in s.stderr
    s.stop()
    for path in [project] + [os.path.join(project, n) for n in os.listdir(project)]:
        os.chown(path, uid, gid)
    s = server_factory(*SMALL, "--chdir", project, "--user", "www-data", "--group", "www-data",
                       app="sqliteapp").start()
    assert get_status_and_body(s.port) == (200, b"written")
    assert "without a User directive" not in s.stderr


def get_status_and_body(port: int) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()
