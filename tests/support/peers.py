"""The peers a differential test compares mpmserver with, started on
127.0.0.1 around the same WSGI app: gunicorn (gthread), waitress, Apache
httpd + mod_wsgi (benchmarks/compare.py's ServerRoot and config), and the
reverse proxies put in front of a server: nginx, Apache mod_proxy, HAProxy
(through tests/support/haproxy.py). Each start returns a running server
whose stop() ends it (a mpmserver.bench.server.ServerProcess: its process
group)."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from mpmserver.bench.server import ServerProcess, probe
from tests.support import haproxy
from tests.support.server import ROOT, wait_for

compare = importlib.import_module("benchmarks.compare")

NGINX = shutil.which("nginx") or (os.access("/usr/sbin/nginx", os.X_OK) and "/usr/sbin/nginx") or None
APACHE, APACHE_MODULES, APACHE_MISSING = compare.find_apache()


def _serve(name: str, argv: list[str], port: int) -> ServerProcess:
    return ServerProcess(argv, "127.0.0.1", port, name=name, cwd=str(ROOT)).start(timeout=30)


def gunicorn(app: str, port: int, threads: int = 8) -> ServerProcess:
    return _serve("gunicorn", [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads",
                               str(threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning", app], port)


def waitress(app: str, port: int, threads: int = 8) -> ServerProcess:
    return _serve("waitress", [sys.executable, "-m", "waitress", "--host", "127.0.0.1", "--port", str(port),
                               "--threads", str(threads), app], port)


class Apache(ServerProcess):
    """httpd in the foreground on a temporary ServerRoot, removed at stop()."""

    def __init__(self, root: compare.ApacheRoot, name: str) -> None:
        self.root = root
        super().__init__(root.command(APACHE), "127.0.0.1", root.port, name=name)

    def stop(self, timeout: float = 10.0) -> int | None:
        try:
            return super().stop(timeout)
        finally:
            self.root.cleanup()


def apache_wsgi(app: str, port: int, threads: int = 8, extra: str = "") -> Apache:
    """Apache's event MPM with mod_wsgi embedded (compare.py's config), one
    child, ``extra`` lines appended to its httpd.conf."""
    root = compare.ApacheRoot(app, port, 1, threads, APACHE_MODULES)
    root.prepare()
    with open(root.conf, "a") as f:
        f.write(extra)
    return Apache(root, "apache+mod_wsgi").start(timeout=30)


class _ProxyRoot(compare.ApacheRoot):
    """A ServerRoot whose httpd.conf proxies everything to one back end."""

    def __init__(self, port: int, upstream: int) -> None:
        super().__init__("", port, 1, 16, APACHE_MODULES)
        self.upstream = upstream

    def prepare(self) -> None:
        self.root = tempfile.mkdtemp(prefix="mpmserver-apache-proxy-")
        os.chmod(self.root, 0o755)
        self.conf = os.path.join(self.root, "httpd.conf")
        user = self.user()
        modules = {"mpm_event_module": "mod_mpm_event.so", "authz_core_module": "mod_authz_core.so",
                   "proxy_module": "mod_proxy.so", "proxy_http_module": "mod_proxy_http.so"}
        lines = [f'ServerRoot "{self.root}"', f'DefaultRuntimeDir "{self.root}"', f'PidFile "{self.root}/httpd.pid"',
                 f'ErrorLog "{self.root}/error.log"', "LogLevel warn", "ServerName 127.0.0.1",
                 f"Listen 127.0.0.1:{self.port}", *([f"User {user}", f"Group {user}"] if user else []),
                 *(f"LoadModule {n} {self.module_dir}/{so}" for n, so in modules.items()),
                 "Timeout 5", "KeepAlive On", f"ProxyPass / http://127.0.0.1:{self.upstream}/",
                 "ProxyPreserveHost On", ""]
        Path(self.conf).write_text("\n".join(lines))
        os.chmod(self.conf, 0o644)


def apache_proxy(port: int, upstream: int) -> Apache:
    """Apache mod_proxy_http in front of 127.0.0.1:``upstream`` (its default
    connection reuse: requests of many clients share back-end connections)."""
    root = _ProxyRoot(port, upstream)
    root.prepare()
    return Apache(root, "apache mod_proxy").start(timeout=30)


def nginx(port: int, upstream: int, top: Path) -> ServerProcess:
    """nginx proxying to 127.0.0.1:``upstream`` over kept-alive HTTP/1.1
    back-end connections (so a desync would carry over between clients),
    never retrying a request on another try."""
    top.mkdir(mode=0o755, exist_ok=True)
    user = "user www-data;\n" if os.geteuid() == 0 else ""
    temps = "".join(f"    {k}_temp_path {top}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (top / "nginx.conf").write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {top}/nginx.pid;\nerror_log {top}/error.log;\n"
        f"events {{}}\nhttp {{\n    access_log off;\n{temps}"
        f"    upstream back {{ server 127.0.0.1:{upstream}; keepalive 16; }}\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n        client_body_timeout 3s;\n"
        "        location / {\n            proxy_pass http://back;\n            proxy_http_version 1.1;\n"
        "            proxy_set_header Connection \"\";\n            proxy_next_upstream off;\n"
        "            proxy_read_timeout 5s;\n        }\n    }\n}\n")
    return _serve("nginx", [NGINX, "-c", str(top / "nginx.conf"), "-p", str(top), "-e", str(top / "error.log")], port)


def haproxy_config(port: int, upstream: int) -> str:
    """HAProxy in http mode in front of 127.0.0.1:``upstream``, back-end
    connections reused across clients (http-reuse always), no retries."""
    return (f"defaults\n    mode http\n    timeout connect 3s\n    timeout client 5s\n    timeout server 5s\n"
            f"    retries 0\n\nfrontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\n"
            f"backend be\n    http-reuse always\n    server s1 127.0.0.1:{upstream}\n")


class Haproxy:
    """tests/support/haproxy.py's HAProxy on haproxy_config, once it answers."""

    def __init__(self, port: int, upstream: int, top: Path) -> None:
        cfg = top / "haproxy.cfg"
        cfg.write_text(haproxy_config(port, upstream))
        self.proc = haproxy.start(str(cfg))
        try:
            wait_for(lambda: probe("127.0.0.1", port, "/ready"), 15, 0.05, "HAProxy to answer")
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        haproxy.stop(self.proc)
