"""Issue 16, item 4: files that cannot be turned against root.

The policy (safefiles.link_refusal, unsafe_directory, directory_warning) is
tested on made-up stat results; the mechanism on files in a temporary
directory. The server end to end as root (a root-owned 0600 target behind a
link planted at the PidFile, ErrorLog and CustomLog paths) is
tests/external/test_file_safety_root.py; StatusShowQuery on a real server,
tests/server/test_file_safety_served.py.
"""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest

from mpmserver import safefiles
from mpmserver.logs import AccessLog, ErrorLog
from mpmserver.safefiles import (
    UnsafeFileError,
    directory_warning,
    link_refusal,
    unsafe_directory,
)
from mpmserver.scoreboard import Scoreboard
from tests.support.files import planted_link, root_only, secret

USER_UID, GROUP_GID = 33, 33  # made-up ids for the policy tests


def st(kind: int = stat.S_IFDIR, perm: int = 0o755, uid: int = 0, gid: int = 0, nlink: int = 1):
    return SimpleNamespace(st_mode=kind | perm, st_uid=uid, st_gid=gid, st_nlink=nlink)


# --- policy -------------------------------------------------------------------

def test_a_link_owned_by_another_user_is_refused_as_root():
    why = link_refusal("error log file", "/var/log/x.log", st(stat.S_IFLNK, 0o777, uid=USER_UID), 0)
    assert "symbolic link owned by uid 33, not root" in why and "/var/log/x.log" in why
    assert "remove the link" in why


@pytest.mark.parametrize("owner, euid", [(0, 0), (0, 1000), (1000, 1000)])
def test_a_link_of_root_or_of_the_server_user_is_followed(owner, euid):
    assert link_refusal("error log file", "/x", st(stat.S_IFLNK, 0o777, uid=owner), euid) is None


def test_a_hard_linked_file_is_refused_as_root_only():
    hard = st(stat.S_IFREG, 0o600, nlink=2)
    assert "has 2 hard links" in link_refusal("access log file", "/x", hard, 0)
    assert link_refusal("access log file", "/x", hard, 1000) is None
    assert link_refusal("access log file", "/x", st(stat.S_IFREG, 0o644), 0) is None
    assert link_refusal("error log file", "/dev/null", st(stat.S_IFCHR, 0o666, nlink=1), 0) is None


@pytest.mark.parametrize("directory, holds_file, expected", [
    (st(uid=USER_UID), True, "owned by the User"),
    (st(perm=0o777), True, "writable by every user"),
    (st(perm=0o775, gid=GROUP_GID), True, "writable by group 33"),
    (st(perm=0o775, gid=GROUP_GID + 1), True, None),
    (st(perm=0o755), True, None),
    (st(perm=0o1777), True, "writable by every user"),  # /tmp as the file's own directory
    (st(perm=0o1777), False, None),  # /tmp above a root-owned directory
    (st(perm=0o1777, uid=USER_UID), False, "owned by the User"),
])
def test_unsafe_directory(directory, holds_file, expected):
    why = unsafe_directory(directory, USER_UID, {GROUP_GID}, holds_file)
    assert why == expected if expected is None else expected in why


def test_directory_warning_names_the_file_the_directory_and_the_fix():
    chain = [("/srv/app/run", st(perm=0o755)), ("/srv/app", st(uid=USER_UID)), ("/srv", st()), ("/", st())]
    w = directory_warning("PidFile", "/srv/app/run/mpm.pid", chain, "www-data", USER_UID, {GROUP_GID})
    assert w.startswith("PidFile /srv/app/run/mpm.pid: directory /srv/app is owned by the User (uid 33)")
    assert "User www-data" in w and "chown root /srv/app; chmod go-w /srv/app" in w
    safe = [("/run", st()), ("/", st())]
    assert directory_warning("PidFile", "/run/mpm.pid", safe, "www-data", USER_UID, {GROUP_GID}) is None
    tmp = [("/tmp", st(perm=0o1777)), ("/", st())]
    w = directory_warning("ErrorLog", "/tmp/e.log", tmp, "www-data", USER_UID, ())
    assert "writable by every user" in w and "a directory only root can write" in w and "chmod" not in w


# --- mechanism ------------------------------------------------------------------

def test_open_append_creates_a_0644_file_and_appends(tmp_path):
    path = str(tmp_path / "a.log")
    old = os.umask(0o022)
    try:
        fd = safefiles.open_append(path, "access log file")
    finally:
        os.umask(old)
    os.write(fd, b"one\n")
    os.close(fd)
    fd = safefiles.open_append(path, "access log file")
    os.write(fd, b"two\n")
    os.close(fd)
    assert open(path).read() == "one\ntwo\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_open_append_follows_its_own_users_link(tmp_path):
    target = tmp_path / "real.log"
    (tmp_path / "link.log").symlink_to(target)
    fd = safefiles.open_append(str(tmp_path / "link.log"), "error log file")
    os.write(fd, b"x\n")
    os.close(fd)
    assert target.read_text() == "x\n"


@root_only
def test_open_append_refuses_another_users_link_and_leaves_the_target_alone(tmp_path):
    target, mtime = secret(tmp_path)
    link = planted_link(tmp_path, "error.log", target)
    with pytest.raises(UnsafeFileError) as e:
        safefiles.open_append(link, "error log file")
    assert str(e.value).startswith(f"error log file {link} is a symbolic link owned by uid")
    assert target.read_text() == "root's secret\n" and target.stat().st_mtime_ns == mtime


@root_only
def test_open_append_refuses_a_hard_link_as_root(tmp_path):
    target, mtime = secret(tmp_path)
    os.link(target, tmp_path / "access.log")
    with pytest.raises(UnsafeFileError, match="has 2 hard links"):
        safefiles.open_append(str(tmp_path / "access.log"), "access log file")
    assert target.stat().st_mtime_ns == mtime


@root_only
def test_reopen_refuses_a_link_planted_after_start_and_keeps_the_open_file(tmp_path):
    target, mtime = secret(tmp_path)
    path = tmp_path / "error.log"
    log = ErrorLog(str(path))
    access = AccessLog(str(tmp_path / "access.log"), "%r")
    try:
        for p in (path, tmp_path / "access.log"):
            os.rename(p, str(p) + ".1")  # rotated away...
            planted_link(tmp_path, p.name, target)  # ...and a link planted in its place
        with pytest.raises(UnsafeFileError):
            log.reopen()
        with pytest.raises(UnsafeFileError):
            access.reopen()
        log.error("still logging")
    finally:
        log.close()
        access.close()
    assert "still logging" in (tmp_path / "error.log.1").read_text()
    assert target.read_text() == "root's secret\n" and target.stat().st_mtime_ns == mtime


def test_pid_file_replaces_a_link_and_is_removed_only_while_it_is_ours(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep\n")
    pid_path = tmp_path / "mpm.pid"
    pid_path.symlink_to(target)
    written = safefiles.write_pid_file(str(pid_path), 4242)
    assert not pid_path.is_symlink() and pid_path.read_text() == "4242\n"
    assert stat.S_IMODE(pid_path.stat().st_mode) == 0o644
    assert target.read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mpm.pid", "target"]  # no temporary left
    # Replaced by a link, or by another server's PidFile: left alone.
    os.rename(pid_path, tmp_path / "ours")
    pid_path.symlink_to(target)
    assert not safefiles.remove_pid_file(str(pid_path), written)
    assert pid_path.is_symlink() and target.exists()
    pid_path.unlink()
    os.rename(tmp_path / "ours", pid_path)
    assert safefiles.remove_pid_file(str(pid_path), written)
    assert not pid_path.exists()


def test_pid_file_error_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"could not write PidFile .*/missing/mpm\.pid: cannot "
                                                r"create a file in .*/missing"):
        safefiles.write_pid_file(str(tmp_path / "missing" / "mpm.pid"), 1)


def test_check_directories_on_real_directories(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.chmod(run, 0o755)
    os.chmod(tmp_path, 0o755)
    me = os.geteuid()
    assert safefiles.check_directories([("PidFile", str(run / "p"))], "someone", me + 1, ()) == []
    os.chmod(run, 0o777)
    [w] = safefiles.check_directories([("PidFile", str(run / "p"))], "someone", me + 1, ())
    assert f"directory {run} is writable by every user" in w
    os.chmod(run, 0o755)
    [w] = safefiles.check_directories([("ErrorLog", str(run / "e.log"))], "me", me, ())
    assert f"directory {run} is owned by the User" in w


def test_scoreboard_file_is_0600_or_0640_with_the_group(tmp_path):
    path = str(tmp_path / "sb")
    sb = Scoreboard.create(1, 1, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    sb.close()
    gid = os.getgroups()[0] if os.getgroups() else os.getegid()
    sb = Scoreboard.create(1, 1, path, group=gid)
    try:
        st_ = os.stat(path)
        assert (stat.S_IMODE(st_.st_mode), st_.st_gid) == (0o640, gid)
    finally:
        sb.close()


# --- the PidFile object: upgrade, rollback, none configured ------------------------

def test_pid_file_follows_an_upgrade_and_a_rollback_and_removes_only_its_own(tmp_path):
    path = str(tmp_path / "mpm.pid")
    pid_file = safefiles.PidFile(path)
    pid_file.write()
    assert open(path).read() == f"{os.getpid()}\n"
    first = os.stat(path).st_ino
    # A binary upgrade moves it to .oldbin; a rollback writes it anew (a new inode).
    assert pid_file.rename(path + ".oldbin") is None
    assert not os.path.exists(path) and os.path.exists(path + ".oldbin")
    pid_file.write_again()
    assert os.path.exists(path) and not os.path.exists(path + ".oldbin")
    assert os.stat(path).st_ino != first
    # Someone else's file now at the path (a new master's PidFile) stays.
    os.unlink(path)
    with open(path, "w") as f:
        f.write("12345\n")
    assert pid_file.rename(path + ".oldbin") == f"{path} is no longer the file this master wrote"
    pid_file.remove()
    assert open(path).read() == "12345\n"


def test_no_pid_file_configured_does_nothing(tmp_path):
    pid_file = safefiles.PidFile(None)
    pid_file.write()
    assert pid_file.rename(str(tmp_path / "x")) is None
    pid_file.write_again()
    pid_file.remove()
    assert list(tmp_path.iterdir()) == []
