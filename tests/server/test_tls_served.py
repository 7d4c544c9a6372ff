"""TLS from a configuration file with the real command line (issue 24):
HTTPS beside plain HTTP on another Listen line, -t checking the files, and
a certificate renewed under a graceful restart with requests in flight (a
bad new certificate keeps the old generation serving)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.support.server import ROOT, Server, free_port, http, wait_for

trustme = pytest.importorskip("trustme", reason="trustme (the test extra) makes the certificates")


class Site:
    """A CA, and the server's certificate files as certbot leaves them."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.ca = trustme.CA()
        self.ca_file = str(tmp_path / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.cert = tmp_path / "fullchain.pem"
        self.key = tmp_path / "privkey.pem"
        self.serial = self.renew()

    def renew(self, garbage: bool = False) -> int | None:
        """New certificate files, swapped in by rename (as certbot's links
        flip); the new certificate's serial number."""
        if garbage:
            (self.dir / "new.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
            os.replace(self.dir / "new.pem", self.cert)
            return None
        leaf = self.ca.issue_cert("127.0.0.1", "localhost")
        with open(self.dir / "new.pem", "wb") as f:
            for blob in leaf.cert_chain_pems:
                f.write(blob.bytes())
        leaf.private_key_pem.write_to_path(self.dir / "new.key")
        os.chmod(self.dir / "new.key", 0o600)
        os.replace(self.dir / "new.key", self.key)
        os.replace(self.dir / "new.pem", self.cert)
        return ssl._ssl._test_decode_cert(str(self.cert))["serialNumber"]  # noqa: SLF001

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


def served_serial(site: Site, port: int) -> str:
    """A new TLS connection: the serial of the certificate served, after a request answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with site.context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
            serial = s.getpeercert()["serialNumber"]
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            reply = b""
            while True:
                data = s.recv(65536)
                if not data:
                    break
                reply += data
            assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"Hello, World!"), reply[:200]
            return serial


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path)


def config(site: Site, plain: int, https: int, *extra: str) -> str:
    path = site.dir / "mpm.conf"
    path.write_text("\n".join([
        f"Listen 127.0.0.1:{plain}",
        f"Listen 127.0.0.1:{https} https",
        f"SSLCertificateFile {site.cert.name}",  # relative to this file
        f"SSLCertificateKeyFile {site.key.name}",
        "StartServers 2", "ThreadsPerChild 4", "MinSpareThreads 1", "MaxSpareThreads 16",
        f"ErrorLog {site.dir / 'error.log'}", "LogLevel info",
        "WSGIApp tests.apps.basic:app",
        *extra]) + "\n")
    return str(path)


def test_https_beside_plain_http(site, server_factory):
    plain, https = free_port(), free_port()
    s = server_factory(app=None, config=config(site, plain, https), port=plain).start()
    assert requests.get(f"https://127.0.0.1:{https}/hello", verify=site.ca_file, timeout=10).text == "Hello, World!"
    assert http(plain, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").endswith(b"Hello, World!")
    env = requests.get(f"https://127.0.0.1:{https}/env", verify=site.ca_file, timeout=10).json()
    assert env["HTTPS"] == "on" and env["wsgi.url_scheme"] == "https"
    assert "HTTPS" not in requests.get(f"http://127.0.0.1:{plain}/env", timeout=10).json()
    log = (site.dir / "error.log").read_text()
    assert f"https://127.0.0.1:{https}" in log and f"http://127.0.0.1:{plain}" in log
    assert s.proc.poll() is None


def check(conf: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpmserver", "-t", "-f", conf], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)


def test_dash_t_checks_the_certificate_and_key(site):
    conf = config(site, free_port(), free_port())
    ok = check(conf)
    assert (ok.returncode, ok.stdout) == (0, "Syntax OK\n"), ok.stderr
    other = trustme.CA().issue_cert("x")
    other.private_key_pem.write_to_path(site.key)
    bad = check(conf)
    assert bad.returncode == 1
    assert f"line 4 of {conf}: SSLCertificateKeyFile: the private key {site.key} does not match" in bad.stderr
    site.cert.unlink()
    gone = check(conf)
    assert f"line 3 of {conf}: SSLCertificateFile: cannot read the certificate {site.cert}" in gone.stderr


def test_a_certificate_renewed_under_a_graceful_restart(site, server_factory):
    """certbot's deploy hook: new files, then a graceful restart. New
    connections get the new certificate, none of the requests in flight
    fails; a broken certificate next keeps the serving generation."""
    plain, https = free_port(), free_port()
    s = server_factory(app=None, config=config(site, plain, https), port=plain).start()
    first = served_serial(site, https)
    failures: list[str] = []
    served = [0]
    stop = threading.Event()

    def load():
        with requests.Session() as session:  # keep-alive requests across the restart
            while not stop.is_set():
                try:
                    r = session.get(f"https://127.0.0.1:{https}/slow?t=0.05", verify=site.ca_file, timeout=15)
                    if r.status_code != 200:
                        failures.append(f"status {r.status_code}")
                    served[0] += 1
                except Exception as exc:  # noqa: BLE001
                    failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: served[0] >= 8, 20, what="requests under way")
        second = site.renew()
        s.signal(signal.SIGUSR1)
        wait_for(lambda: served_serial(site, https) == second, 30, 0.1, what="the new certificate served")
        before = served[0]
        wait_for(lambda: served[0] >= before + 8, 20, what="requests after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert first != second and failures == []

    site.renew(garbage=True)
    s.signal(signal.SIGUSR1)
    wait_for(lambda: "configuration error on restart, keeping the running configuration"
             in (site.dir / "error.log").read_text(), 20, what="the bad certificate logged")
    assert "SSLCertificateFile" in (site.dir / "error.log").read_text().split("configuration error on restart")[-1]
    for _ in range(3):
        assert served_serial(site, https) == second
    assert s.proc.poll() is None
