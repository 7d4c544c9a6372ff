"""The session set-up that lets children running as nobody import Python
(tests/support/python_access.py), on directories made for the test."""

import os
import stat
import sys

from tests.support.python_access import grant_search, python_roots


def test_roots_include_the_base_prefix_and_the_real_stdlib_not_only_the_venv(tmp_path, monkeypatch):
    # A venv in a readable place over a Python installed in a private home.
    private = tmp_path / "root"
    base = private / ".pyenv" / "versions" / "3.x"
    stdlib = base / "lib" / "python3"
    stdlib.mkdir(parents=True)
    link = tmp_path / "stdlib-link"
    link.symlink_to(stdlib)
    venv = tmp_path / "venv"
    venv.mkdir()
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "base_prefix", str(base))
    monkeypatch.setattr(os, "__file__", str(link / "os.py"))
    roots = python_roots(str(tmp_path / "project"))
    assert str(venv) in roots and str(base) in roots
    assert str(stdlib) in roots, "the stdlib's real location, not the symlink"
    assert str(link) not in roots


def test_grant_search_adds_o_x_on_the_blocking_ancestors_only(tmp_path):
    private = tmp_path / "root"
    inner = private / "py" / "lib"
    inner.mkdir(parents=True)
    private.chmod(0o700)
    (private / "py").chmod(0o755)
    try:
        changed = grant_search([str(inner)])
        assert str(private) in changed and str(private / "py") not in changed
        mode = private.stat().st_mode
        assert mode & stat.S_IXOTH and not mode & stat.S_IROTH, "search, not read"
    finally:
        private.chmod(0o755)
