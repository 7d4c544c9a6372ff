"""Planted links and root-owned files for the file-safety tests (safefiles.py)."""

import os
import pwd

import pytest

# One child of two threads: the servers of the file-safety tests.
SMALL = ("--start-servers", "1", "--threads-per-child", "2", "--min-spare-threads", "1",
         "--max-spare-threads", "8", "--max-request-workers", "4")


def root_only(test):
    """Marked root, and skipped unless root (a failure under MPMSERVER_REQUIRE_EXTERNAL=1)."""
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason="needs root (as on CI)")(test))


def account(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"no user {name!r} on this machine")


def planted_link(tmp_path, name: str, target) -> str:
    """A link owned by nobody (as a child running as the User would plant)."""
    link = tmp_path / name
    link.symlink_to(target)
    os.lchown(link, account("nobody").pw_uid, -1)
    return str(link)


def secret(tmp_path):
    """A root-owned 0600 file, its content and mtime."""
    target = tmp_path / "secret"
    target.write_text("root's secret\n")
    os.chmod(target, 0o600)
    os.utime(target, (1_000_000_000, 1_000_000_000))
    return target, target.stat().st_mtime_ns
