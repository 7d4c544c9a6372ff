"""Where the app lives: Chdir and PythonPath (gunicorn's --chdir and
--pythonpath; issue 26), with -t and a real server started from another
directory than the project's."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mpmserver.cli import build_parser
from mpmserver.config import ConfigError, load, overrides_from_args

from tests.support.server import ROOT, Server, free_port, http

APP = '''import os
import helper


def application(environ, start_response):
    body = f"{helper.NAME} cwd={os.getcwd()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def project(request):
    """proj/site/mysite/wsgi.py (imports helper from proj/lib), proj/mysite.conf
    with relative Chdir and PythonPath, and proj/elsewhere to start from.
    Made with mode 0755 so that children running as nobody (tests as root)
    can import from it."""
    top = Path(tempfile.mkdtemp(prefix="mpmserver-apphome-"))
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    (top / "site" / "mysite").mkdir(parents=True)
    (top / "lib").mkdir()
    (top / "elsewhere").mkdir()
    (top / "site" / "mysite" / "__init__.py").write_text("")
    (top / "site" / "mysite" / "wsgi.py").write_text(APP)
    (top / "lib" / "helper.py").write_text('NAME = "helper from lib"\n')
    for p in [top, *top.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return top


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mpmserver", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)


def test_t_from_another_directory_imports_the_app_with_chdir(project):
    conf = project / "mysite.conf"
    conf.write_text("WSGIApp mysite.wsgi\n")
    without = run("-t", "-f", "../mysite.conf", cwd=project / "elsewhere")
    assert without.returncode == 1 and "No module named 'mysite'" in without.stderr
    # Relative to the configuration file's directory, wherever -t runs from.
    conf.write_text("Chdir site\nPythonPath lib\nWSGIApp mysite.wsgi\n")
    done = run("-t", "-f", "../mysite.conf", cwd=project / "elsewhere")
    assert (done.returncode, done.stdout) == (0, "Syntax OK\n"), done.stderr


@pytest.mark.parametrize("line", ["Chdir /no/such/dir", "PythonPath lib:/no/such/dir"])
def test_a_missing_directory_names_file_line_and_directive(project, line):
    conf = project / "bad.conf"
    conf.write_text(f"WSGIApp mysite.wsgi\n{line}\n")
    out = run("-t", "-f", str(conf), cwd=project)
    assert out.returncode == 1
    name = line.split()[0]
    assert out.stderr == (f"mpmserver: Syntax error on line 2 of {conf}: {name}: "
                          "directory '/no/such/dir' does not exist\n")


def test_pythonpath_takes_gunicorns_commas_or_colons_and_its_flag(project):
    lib, site = str(project / "lib"), str(project / "site")
    ns = build_parser().parse_args(["--pythonpath", f"{lib},{site}", "--chdir", site])
    cfg, _ = load(None, overrides_from_args(ns))
    assert (cfg.python_path, cfg.chdir) == ([lib, site], site)
    ns = build_parser().parse_args(["--python-path", f"{site}:{lib}"])
    assert load(None, overrides_from_args(ns))[0].python_path == [site, lib]
    with pytest.raises(ConfigError, match=r"^command line: --chdir: '.*wsgi.py' is not a directory$"):
        load(None, [("Chdir", [str(project / "site" / "mysite" / "wsgi.py")])])


def test_a_server_started_elsewhere_serves_the_app_from_chdir(project, tmp_path):
    port = free_port()
    conf = project / "mysite.conf"
    conf.write_text(f"Listen 127.0.0.1:{port}\nChdir site\nPythonPath lib\nWSGIApp mysite.wsgi\n"
                    "FixedServers 1\nThreadsPerChild 2\n")
    s = Server(app=None, config=str(conf), tmp_path=tmp_path, port=port, cwd=project / "elsewhere").start()
    try:
        body = http(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").partition(b"\r\n\r\n")[2]
        # The child imported helper through PythonPath and runs in Chdir.
        assert body == f"helper from lib cwd={project / 'site'}".encode()
    finally:
        s.stop()
