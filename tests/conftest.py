import os
import stat
import sys

import pytest

from .server import Server


def _let_nobody_reach_python() -> list[str]:
    """Run as root, the server's children drop to `nobody`, which must be able to
    read the Python installation. pyenv under /root (mode 0700) blocks it; grant
    search (o+x) on the blocking ancestors only, and say so."""
    changed = []
    path = os.path.realpath(sys.prefix)
    while path != "/":
        try:
            mode = os.stat(path).st_mode
        except OSError:
            break
        if not mode & stat.S_IXOTH:
            os.chmod(path, mode | stat.S_IXOTH)
            changed.append(path)
        path = os.path.dirname(path)
    return changed


_changed: list[str] = []


def pytest_configure(config):
    if os.geteuid() == 0:
        _changed.extend(_let_nobody_reach_python())


def pytest_report_header(config):
    if os.geteuid() == 0:
        changed = _changed
        lines = ["running as root: privilege-drop tests enabled (children run as nobody)"]
        if changed:
            lines.append(f"granted o+x on {', '.join(changed)} so that nobody can import Python modules")
        return lines
    return ["not root: privilege-drop tests are skipped"]


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(*args, **kwargs):
        kwargs.setdefault("tmp_path", tmp_path)
        s = Server(*args, **kwargs)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def server(server_factory):
    """A running server: 2 children x 4 threads serving tests.apps.basic:app."""
    return server_factory("--start-servers", "2", "--threads-per-child", "4", "--min-spare-threads", "1",
                          "--max-spare-threads", "16", "--max-request-workers", "16").start()
