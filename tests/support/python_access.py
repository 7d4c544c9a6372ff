"""Run as root, the server's children drop to `nobody`, which must be able
to read every directory Python imports from: the venv (sys.prefix), the
Python it was made from (sys.base_prefix: pyenv under /root, mode 0700),
the real location of the standard library (a symlinked or relocated
install), site-packages and this checkout. Grant search (o+x, not read) on
the blocking ancestors only, and say so."""

from __future__ import annotations

import os
import stat
import sys
import sysconfig


def python_roots(project_root: str) -> list[str]:
    """The directories a child running as nobody imports from, real paths, once each."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.__file__), project_root]
    paths += [p for key, p in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib", "purelib", "platlib")]
    out: list[str] = []
    for p in paths:
        real = os.path.realpath(p)
        if real not in out:
            out.append(real)
    return out


def grant_search(paths: list[str]) -> list[str]:
    """Add o+x to each directory on the way to every path that lacks it;
    return the directories changed."""
    changed: list[str] = []
    for start in paths:
        path = start
        while path != os.path.dirname(path):
            try:
                mode = os.stat(path).st_mode
            except OSError:
                break
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
                os.chmod(path, mode | stat.S_IXOTH)
                changed.append(path)
            path = os.path.dirname(path)
    return changed
