"""conf/nginx-mpmserver.conf as written, with a real nginx in front of a
real mpmserver on the sample's unix socket (issue 26 item 2).

The sample is changed only where a test must: the socket path
(/run/mpmserver/app.sock -> a temporary directory), `listen 80` (-> a free
port on 127.0.0.1) and the static directory (/srv/mysite/static/ -> a
temporary one). mpmserver's side is the directives the sample's comment
gives, with the same socket path. nginx needs an http{} block around a
sites-enabled file: the wrapper below adds only that, its pid and log files,
and temporary-file directories it can write. As root nginx's workers run as
www-data (Debian's), the group the sample gives the socket; not as root,
the UnixSocketGroup line is left out (only root may give a file to a group
it is not in)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.server import ROOT, Server, free_port, wait_for

pytestmark = pytest.mark.external

NGINX = shutil.which("nginx")
SAMPLE = ROOT / "conf" / "nginx-mpmserver.conf"
SOCKET = "/run/mpmserver/app.sock"
STATIC = "/srv/mysite/static/"
AS_ROOT = os.geteuid() == 0


def site_config(sock: str, port: int, static: Path) -> str:
    """The sample with the three test-only changes (each must be found)."""
    text = SAMPLE.read_text()
    for old, new in ((SOCKET, sock), ("listen 80;", f"listen 127.0.0.1:{port};"), (STATIC, f"{static}/")):
        assert old in text, f"the sample no longer has {old!r}: update this test's substitutions"
        text = text.replace(old, new)
    return text


def mpmserver_config(site: str) -> str:
    """The mpmserver directives of the sample's comment ('#   Directive args'),
    without their trailing comments (not Apache syntax)."""
    lines = [re.sub(r"\s+#.*", "", m.group(1)) for m in re.finditer(r"^#   ([A-Z]\w+ .*)$", site, re.M)]
    assert any(line.startswith("Listen unix:") for line in lines), lines
    if not AS_ROOT:
        lines = [line for line in lines if not line.startswith("UnixSocketGroup")]
    return "\n".join(lines + ["WSGIApp tests.apps.basic:app", "FixedServers 1", "ThreadsPerChild 4", ""])


def nginx_config(top: Path) -> str:
    user = "user www-data;\n" if AS_ROOT else ""
    temps = "\n".join(f"    {kind}_temp_path {top}/{kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                             "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\ndaemon off;\npid {top}/nginx.pid;\nerror_log {top}/error.log;\n"
            f"events {{}}\nhttp {{\n    access_log off;\n{temps}\n    include {top}/site.conf;\n}}\n")


@pytest.fixture
def top(request):
    # Searchable by nginx's workers (www-data) and mpmserver's children (nobody).
    d = Path(tempfile.mkdtemp(prefix="mpmserver-nginx-"))
    d.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def ask(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Host": "example.org"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def answers(port: int) -> bool:
    try:
        return ask(port, "GET", "/hello")[0] == 200
    except OSError:
        return False


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_sample_proxies_uploads_20mb_and_serves_static(top, tmp_path):
    port = free_port()
    static = top / "static"
    static.mkdir(mode=0o755)
    (static / "style.css").write_text("body { color: teal }\n")
    (static / "style.css").chmod(0o644)
    site = site_config(str(top / "app.sock"), port, static)
    (top / "site.conf").write_text(site)
    (top / "mpmserver.conf").write_text(mpmserver_config(site))
    (top / "nginx.conf").write_text(nginx_config(top))
    mpm = Server(app=None, config=str(top / "mpmserver.conf"), tmp_path=tmp_path).start(wait=False)
    nginx = subprocess.Popen([NGINX, "-c", str(top / "nginx.conf"), "-p", str(top), "-e", str(top / "error.log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: nginx.poll() is None and answers(port), 20, 0.1, "nginx to answer through mpmserver")
        assert ask(port, "GET", "/hello") == (200, b"Hello, World!")
        # The client's address crosses the socket: RemoteIP trusts unix (nginx).
        env = json.loads(ask(port, "GET", "/env")[1])
        assert env["REMOTE_ADDR"] == "127.0.0.1" and env["HTTP_HOST"] == "example.org"
        upload = os.urandom(20 * 1024 * 1024)
        status, echoed = ask(port, "POST", "/echo", upload)
        assert status == 200, (status, echoed[:200])  # 413 without client_max_body_size
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(upload).digest()
        assert ask(port, "GET", "/static/style.css") == (200, b"body { color: teal }\n")
        assert ask(port, "GET", "/server-status")[0] == 404
    finally:
        if nginx.poll() is None:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(nginx.pid, signal.SIGKILL)
                nginx.wait(5)
        mpm.stop()
    assert not (top / "app.sock").exists()  # mpmserver removed its socket
