"""docs/serving.md's Django section, followed as written, as root (issue 26):
a fresh `django-admin startproject mysite` with a superuser, served from
another directory by the guide's commands. Without User the children run
as nobody and the admin login fails on the read-only sqlite database;
with the guide's configuration file and its chown, the admin logs in.
The only changes: /srv/mysite is a temporary directory, and port 80 (or
the command line's default 8000) a free port."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import pytest

from tests.support.server import ROOT, Server, free_port

pytestmark = [pytest.mark.external, pytest.mark.root]

GUIDE = ROOT / "docs" / "serving.md"
PROJECT = "/srv/mysite"
# The guide's commands, as written there (tests/docs/test_examples.py checks this file has them).
SERVE = "mpmserver mysite.wsgi --chdir /srv/mysite"
CHECK = "mpmserver -t -f /srv/mysite/mysite.conf"
CHOWN = "chown www-data:www-data /srv/mysite /srv/mysite/db.sqlite3"
PASSWORD = "a-long-test-password-1"


def guide_config() -> str:
    """The configuration file the guide shows (its ```apache block named /srv/mysite/mysite.conf)."""
    m = re.search(r"```apache\n# /srv/mysite/mysite\.conf\n(.*?)```", GUIDE.read_text(), re.S)
    assert m, "serving.md no longer shows /srv/mysite/mysite.conf"
    return m.group(1)


def django(project: Path, *args: str, **env: str) -> None:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=project, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def project(request):
    if os.geteuid() != 0:
        pytest.skip("needs root: the guide is about a server started as root")
    pytest.importorskip("django")
    top = Path(tempfile.mkdtemp(prefix="mpmserver-django-"))
    top.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    where = top / "mysite"
    where.mkdir()
    done = subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", str(where)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    django(where, "migrate", "--noinput")
    django(where, "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.org",
           DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    return where


def here(command: str, project: Path) -> list[str]:
    """A guide's command with the project's path, run by this Python's mpmserver."""
    words = command.replace(PROJECT, str(project)).split()
    return [sys.executable, "-m", "mpmserver", *words[1:]] if words[0] == "mpmserver" else words


def admin_login(port: int) -> int:
    """The admin's login form, as a browser fills it: the status of the POST."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/admin/login/?next=/admin/")
        r = conn.getresponse()
        page = r.read().decode()
        assert r.status == 200, page[:500]
        cookie = re.search(r"csrftoken=([^;]+)", r.getheader("Set-Cookie") or "").group(1)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": "admin", "password": PASSWORD,
                                       "next": "/admin/"})
        conn.request("POST", "/admin/login/?next=/admin/", body=body, headers={
            "Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        if r.status == 302:
            assert r.getheader("Location") == "/admin/"
            assert "sessionid=" in (r.getheader("Set-Cookie") or "")
        return r.status
    finally:
        conn.close()


def test_the_django_guide_as_root(project, tmp_path):
    for command in (SERVE, CHECK, CHOWN):
        assert command in GUIDE.read_text()
    # Without User: children as nobody, the sqlite database read-only.
    port = free_port()
    trap = Server(app=None, port=port, tmp_path=tmp_path)
    trap.command = lambda: here(SERVE, project) + ["--listen", f"127.0.0.1:{port}"]
    try:
        trap.start()
        assert "children will run as nobody" in trap.stderr
        assert admin_login(port) == 500
        assert "attempt to write a readonly database" in trap.stderr + trap.stdout
    finally:
        trap.stop()
    # The guide's fix: its configuration file and its chown.
    port = free_port()
    conf = project / "mysite.conf"
    conf.write_text(guide_config().replace(PROJECT, str(project)).replace("Listen 80\n", f"Listen 127.0.0.1:{port}\n"))
    subprocess.run(here(CHOWN, project), check=True, timeout=30)
    # From another directory (this tree's mpmserver on PYTHONPATH).
    check = subprocess.run(here(CHECK, project), cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert check.returncode == 0 and "Syntax OK" in check.stdout, check.stderr
    fixed = Server(app=None, config=str(conf), port=port, tmp_path=tmp_path)
    try:
        fixed.start(wait=False)
        fixed.wait_ready(timeout=60)
        assert "children will run as nobody" not in fixed.stderr
        assert admin_login(port) == 302
    finally:
        fixed.stop()
