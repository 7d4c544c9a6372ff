import os

import pytest

from tests.support.python_access import grant_search, python_roots
from tests.support.server import ROOT, Server

_changed: list[str] = []


def pytest_configure(config):
    if os.geteuid() == 0:
        _changed.extend(grant_search(python_roots(str(ROOT))))


def pytest_report_header(config):
    if os.geteuid() == 0:
        changed = _changed
        lines = ["running as root: privilege-drop tests enabled (children run as nobody)"]
        if changed:
            lines.append(f"granted o+x on {', '.join(changed)} so that nobody can reach "
                         f"{', '.join(python_roots(str(ROOT)))}")
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
