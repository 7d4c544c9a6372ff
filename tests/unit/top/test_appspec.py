"""App specs (issue 14): factories with literal arguments, default names, -t."""

import subprocess
import sys

import pytest

from mpmserver.appspec import AppSpec, parse_app_spec
from mpmserver.child.child import load_app
from mpmserver.config import ConfigError, load
from tests.support.server import ROOT


def call(app, path="/"):
    out = {}
    body = b"".join(app({"PATH_INFO": path}, lambda status, headers: out.setdefault("status", status)))
    return out["status"], body


def test_parse_names_calls_and_defaults():
    assert parse_app_spec("pkg.mod") == AppSpec("pkg.mod")
    assert parse_app_spec("pkg.mod:obj.wsgi") == AppSpec("pkg.mod", ("obj", "wsgi"))
    spec = parse_app_spec("m:create_app('prod', debug=False, n=[1, 2])")
    assert spec.attrs == ("create_app",) and spec.call == (("prod",), {"debug": False, "n": [1, 2]})


@pytest.mark.parametrize("spec, why", [
    ("m:create_app(os.system('x'))", "must be literals"),
    ("m:create_app(*args)", "cannot use *"),
    ("m:create_app(**kw)", "cannot use **"),
    ("m:app[0]", "a name, a dotted name or a call"),
    ("m:lambda: 1", "a name, a dotted name or a call"),
    ("m:app(", "not a name or a call"),
    ("1m:app", "not a module name"),
])
def test_parse_refuses_anything_but_names_and_literal_calls(spec, why):
    with pytest.raises(ValueError, match=why.replace("*", r"\*")):
        parse_app_spec(spec)


def test_a_bad_spec_is_a_config_error_naming_the_directive(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("WSGIApp m:create_app(__import__('os'))\n")
    with pytest.raises(ConfigError, match=r"line 1 of .*WSGIApp.*must be literals"):
        load(str(conf))


def test_load_calls_the_factory_with_its_arguments():
    assert call(load_app("tests.apps.factory_app:create_app('hi', times=3)")) == ("200 OK", b"hihihi")
    assert call(load_app("tests.apps.factory_app:create_app()")) == ("200 OK", b"hello")


def test_module_alone_means_application_then_app():
    assert call(load_app("tests.apps.factory_app"))[1] == b"application"
    assert call(load_app("tests.apps.app_only"))[1] == b"app-only"
    with pytest.raises(LookupError, match="no attribute 'application' or 'app'"):
        load_app("tests.apps")  # a package with neither


def mpm(*args):
    return subprocess.run([sys.executable, "-m", "mpmserver", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_t_imports_the_app_and_shows_its_traceback():
    out = mpm("-t", "tests.apps.broken:app")
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "this app module is broken on purpose" in out.stderr
    assert "does not load" in out.stderr
    out = mpm("-t", "tests.apps.factory_app:missing")
    assert out.returncode == 1 and "no attribute 'missing'" in out.stderr
    out = mpm("-t", "tests.apps.factory_app:create_app('ok')")
    assert out.returncode == 0 and out.stdout.strip() == "Syntax OK", out.stderr
