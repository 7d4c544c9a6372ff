"""The pytest plugin's `mpm_server` fixture, run in a separate pytest the way
a user's suite would use it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

USER_TESTS = '''
import socket
import urllib.error
import urllib.request

import pytest
import requests

served = []


def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise ValueError("the app broke")
    served.append(environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_requests(mpm_server):
    url = mpm_server(app, threads_per_child=2).url
    assert requests.get(url + "/a", timeout=10).text == "hello"
    assert served[-1] == "/a"


def test_urllib_processes(mpm_server):
    url = mpm_server(app, processes=2).url
    with urllib.request.urlopen(url + "/b", timeout=10) as r:
        assert r.read() == b"hello"


def test_app_error_fails_the_test(mpm_server):
    r = requests.get(mpm_server(app).url + "/boom", timeout=10)
    assert r.status_code == 500  # passes: only the server-side error can fail this test


def test_app_error_in_a_child_fails_the_test(mpm_server):
    r = requests.get(mpm_server(app, processes=1).url + "/boom", timeout=10)
    assert r.status_code == 500


def test_expected_error_acknowledged(mpm_server):
    server = mpm_server(app)
    assert requests.get(server.url + "/boom", timeout=10).status_code == 500
    assert [type(e) for e in server.errors] == [ValueError]
    server.errors.clear()


def test_raise_off(mpm_server):
    server = mpm_server(app, raise_app_errors=False)
    assert requests.get(server.url + "/boom", timeout=10).status_code == 500


ports = []


def test_two_servers(mpm_server):
    a, b = mpm_server(app), mpm_server(app, processes=1)
    assert a.port != b.port
    ports.extend([a.port, b.port])


def test_servers_were_stopped_after_the_test():
    assert len(ports) == 2
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
'''

XDIST_TESTS = '''
import requests


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode()]

''' + "".join(f'''
def test_{i}(mpm_server):
    server = mpm_server(app, processes={i % 2})
    assert requests.get(server.url + "/{i}", timeout=10).text == "/{i}"
''' for i in range(8))


def run_pytest(tmp_path: Path, source: str, *args: str, autoload: bool = False) -> dict[str, tuple[str, str]]:
    """Run pytest on `source`; {test name: (outcome, message)}."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    plugin_args: list[str] = []
    if not autoload:
        # Independent of whether the package (and so its entry point) is installed.
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        plugin_args = ["-p", "mpmserver.pytest_plugin"]
        if "-n" in args:
            plugin_args += ["-p", "xdist.plugin"]
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin_args, "-q",
         f"--junitxml={junit}", "--rootdir", str(tmp_path), *args, str(tmp_path / "test_user.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert junit.exists(), proc.stdout + proc.stderr
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, (child.get("message") or "") + (child.text or "")
        out[case.get("name")] = (outcome, message)
    return out


def test_fixture_serves_fails_tests_on_app_errors_and_stops_servers(tmp_path):
    results = run_pytest(tmp_path, USER_TESTS)
    assert results["test_requests"][0] == "passed"
    assert results["test_urllib_processes"][0] == "passed"
    # The server-side exception fails the test that caused it (a failure in
    # its call phase, not an error at teardown), with the app's traceback.
    outcome, message = results["test_app_error_fails_the_test"]
    assert outcome == "failure" and "ValueError: the app broke" in message
    outcome, message = results["test_app_error_in_a_child_fails_the_test"]
    assert outcome == "failure" and "ValueError: the app broke" in message
    assert 'raise ValueError("the app broke")' in message  # the child's traceback travelled
    assert results["test_expected_error_acknowledged"][0] == "passed"
    assert results["test_raise_off"][0] == "passed"
    assert results["test_two_servers"][0] == "passed"
    assert results["test_servers_were_stopped_after_the_test"][0] == "passed"


def test_under_xdist_every_server_has_its_own_port(tmp_path):
    results = run_pytest(tmp_path, XDIST_TESTS, "-n", "2")
    assert results == {f"test_{i}": ("passed", "") for i in range(8)}


def test_registered_through_the_pytest11_entry_point(tmp_path):
    import importlib.metadata as md

    if not any(ep.value == "mpmserver.pytest_plugin" for ep in md.entry_points(group="pytest11")):
        assert 'mpmserver = "mpmserver.pytest_plugin"' in (ROOT / "pyproject.toml").read_text()
        pytest.skip("mpmserver is not pip-installed here, so its entry point is not active")
    results = run_pytest(tmp_path, USER_TESTS, "-k", "test_requests", autoload=True)
    assert results == {"test_requests": ("passed", "")}
