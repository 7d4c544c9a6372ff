"""tests/external holds only tests that need a component outside Python or
root: each file says which with pytestmark (external, root), so that
`pytest -m "not external"` leaves them all out and MPMSERVER_REQUIRE_EXTERNAL=1
(CI) turns their skips into failures."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items if item.path.is_relative_to(HERE)
                and not (item.get_closest_marker("external") or item.get_closest_marker("root"))]
    if unmarked:
        raise pytest.UsageError("tests/external holds only tests marked external or root; not marked: "
                                + ", ".join(unmarked))


def pytest_terminal_summary(terminalreporter):
    """Tables a test records with record_property("framing_corpus", text)
    (tests/external/test_framing_corpus.py): printed after the run, also
    under pytest-xdist (properties travel with the report)."""
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for name, text in getattr(report, "user_properties", ()):
            if name == "framing_corpus" and report.when == "call":
                terminalreporter.write_sep("=", "framing corpus")
                terminalreporter.write_line(text)
