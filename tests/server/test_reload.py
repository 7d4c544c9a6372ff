"""--reload (issue 14): a change to the app's source restarts the children
gracefully; refused with PreloadApp."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mpmserver.deploy.reload import changed, scan, source_roots

from tests.support.server import ROOT, Server, http, wait_for

APP_V = '''
def app(environ, start_response):
    body = b"version %d"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def get_body(port):
    return http(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").split(b"\r\n\r\n", 1)[-1]


def test_policy_scan_and_changed(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "views.py").write_text("x = 1")
    (pkg / "__pycache__" / "views.cpython-311.pyc").write_text("")
    (pkg / "notes.txt").write_text("")
    before = scan([str(pkg)])
    assert sorted(before) == [str(pkg / "__init__.py"), str(pkg / "views.py")]
    after = dict(before, **{str(pkg / "views.py"): before[str(pkg / "views.py")] + 1})
    del after[str(pkg / "__init__.py")]
    assert changed(before, after) == [str(pkg / "__init__.py"), str(pkg / "views.py")]


def test_source_roots_is_the_apps_package_or_module_directory(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "single.py").write_text("")
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "proj" / "__init__.py").write_text("")
    assert source_roots("single:app", "/cwd") == [str(tmp_path.resolve())]
    assert source_roots("proj.sub.wsgi:application", "/cwd") == [str((tmp_path / "proj").resolve())]
    assert source_roots("no_such_module_xyz:app", "/cwd") == ["/cwd"]


def test_a_changed_source_file_restarts_the_children(tmp_path, monkeypatch, request):
    request_cleanup = request.addfinalizer
    # Readable by the children, which run as nobody when the tests run as root.
    src = Path(tempfile.mkdtemp(prefix="mpmserver-reload-"))
    src.chmod(0o755)
    request_cleanup(lambda: shutil.rmtree(src, ignore_errors=True))
    module = src / "reload_app_v.py"
    module.write_text(APP_V % 1)
    module.chmod(0o644)
    monkeypatch.setenv("PYTHONPATH", str(src))
    s = Server("--reload", "-w", "1", "--threads", "2", app="reload_app_v:app", tmp_path=tmp_path).start()
    try:
        assert get_body(s.port) == b"version 1"
        wait_for(lambda: "--reload: watching" in s.stderr, 10, what="the watcher to start")
        first = set(s.children())
        module.write_text(APP_V % 2 + "\n# changed\n")
        wait_for(lambda: get_body(s.port) == b"version 2", 20, what="the new code to be served")
        assert "reload_app_v.py changed; restarting the children gracefully" in s.stderr
        wait_for(lambda: s.children() and not set(s.children()) & first, 15, what="the old child to go")
        assert s.proc.poll() is None
    finally:
        s.stop()


def test_reload_is_refused_with_preload_app():
    out = subprocess.run([sys.executable, "-m", "mpmserver", "--reload", "--preload-app", "on",
                          "tests.apps.basic:app"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "--reload cannot be used with PreloadApp On" in out.stderr
