"""The open-file table of the files Alias serves (child/files.py): real
files in a temporary directory, no server."""

import os

import pytest

from mpmserver.child.files import OpenFiles


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "static"
    (d / "css").mkdir(parents=True)
    (d / "css" / "site.css").write_bytes(b"body{}")
    (d / "css" / "site.css.gz").write_bytes(b"gz")
    (tmp_path / "secret").write_bytes(b"secret")
    return d


def path(p) -> bytes:
    return os.fsencode(str(p))


def test_a_regular_file_is_opened_once_and_kept(root):
    files = OpenFiles(4, follow_symlinks=False)
    entry = files.lookup(path(root / "css/site.css"), path(root))
    assert os.pread(entry.fd, 100, 0) == b"body{}"
    assert entry.facts.size == 6 and entry.content_type == b"text/css; charset=utf-8"
    assert entry.siblings == (1,)  # the .gz, not a .br
    assert files.lookup(path(root / "css/site.css"), path(root)) is entry
    files.close()


def test_a_file_replaced_on_disk_is_opened_again(root):
    files = OpenFiles(4, follow_symlinks=False)
    first = files.lookup(path(root / "css/site.css"), path(root))
    new = root / "css" / "new"
    new.write_bytes(b"body{color:red}")
    os.replace(new, root / "css" / "site.css")  # a deploy: a new inode under the name
    second = files.lookup(path(root / "css/site.css"), path(root))
    assert second is not first and os.pread(second.fd, 100, 0) == b"body{color:red}"
    (root / "css" / "site.css").write_bytes(b"x")  # rewritten in place: another size
    assert os.pread(files.lookup(path(root / "css/site.css"), path(root)).fd, 100, 0) == b"x"
    files.close()


def test_missing_files_and_directories_are_404(root):
    files = OpenFiles(4, follow_symlinks=False)
    assert files.lookup(path(root / "none.css"), path(root)) == 404
    assert files.lookup(path(root / "css"), path(root)) == 404
    assert files.lookup(path(root / "css/site.css/x"), path(root)) == 404


def test_a_symlink_leading_out_is_403_unless_followsymlinks(root):
    os.symlink(root.parent / "secret", root / "link")
    os.symlink("/etc", root / "etc")
    os.symlink(root / "css" / "site.css", root / "inside.css")
    files = OpenFiles(4, follow_symlinks=False)
    assert files.lookup(path(root / "link"), path(root)) == 403
    assert files.lookup(path(root / "etc/passwd"), path(root)) == 403
    assert os.pread(files.lookup(path(root / "inside.css"), path(root)).fd, 9, 0) == b"body{}"
    follow = OpenFiles(4, follow_symlinks=True)
    assert os.pread(follow.lookup(path(root / "link"), path(root)).fd, 9, 0) == b"secret"
    files.close()
    follow.close()


def test_the_table_is_bounded(root):
    for i in range(10):
        (root / f"f{i}").write_bytes(b"%d" % i)
    files = OpenFiles(3, follow_symlinks=False)
    before = len(os.listdir("/proc/self/fd"))
    for i in range(10):
        files.lookup(path(root / f"f{i}"), path(root))
    files.lookup(path(root / "f7"), path(root))  # used: f8 is now the least recent
    files.lookup(path(root / "f0"), path(root))
    assert len(files) == 3 and len(os.listdir("/proc/self/fd")) == before + 3
    assert [os.pread(e.fd, 9, 0) for e in files._open.values()] == [b"9", b"7", b"0"]
    files.close()
    assert len(os.listdir("/proc/self/fd")) == before
