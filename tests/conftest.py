import os

import pytest

from tests.support.python_access import grant_search, python_roots
from tests.support.server import ROOT, Server
from tests.support.systemd import notify_socket  # noqa: F401 (a fixture, for the systemd tests)
from tests.support.timing import describe

_changed: list[str] = []

# CI sets this after installing every component (.ci/run): a test marked
# external or root that skips there (a binary missing, not root) fails
# instead, so that a green CI means those tests ran.
REQUIRE_EXTERNAL = os.environ.get("MPMSERVER_REQUIRE_EXTERNAL") == "1"


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_EXTERNAL and report.skipped and not hasattr(report, "wasxfail"):
        needs = [m for m in ("external", "root") if item.get_closest_marker(m)]
        if needs:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = (f"MPMSERVER_REQUIRE_EXTERNAL=1 and this {'/'.join(needs)} test was skipped: "
                               f"{reason}")


def pytest_terminal_summary(terminalreporter):
    """A line per figure a test recorded: "summary" (test_fuzz: how many
    examples ran within its budget) and "timing" (tests/support/timing.py:
    wall-clock figures, with the target benchmarks/timings.py checks), so
    the figures are seen, not only passed."""
    lines = [value if name == "summary" else describe(value)
             for key in ("passed", "failed") for report in terminalreporter.stats.get(key, [])
             if report.when == "call" for name, value in report.user_properties if name in ("summary", "timing")]
    if lines:
        terminalreporter.write_sep("-", "test summaries")
        for line in lines:
            terminalreporter.write_line(line)
