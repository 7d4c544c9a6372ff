"""curl, wrk and openssl s_client against HTTPS (issue 24): curl verifies
the certificate with --cacert (no -k anywhere), HTTP/1.1 is what it gets
even when it would rather speak h2, a client certificate reaches the app,
wrk's keep-alive load over TLS loses no request, and openssl s_client's
client-initiated renegotiation is refused without disturbing anything."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from mpmserver.testing import serve
from tests.apps.basic import app

pytest.importorskip("trustme", reason="serve(tls=True) needs trustme (the test extra)")
pytestmark = pytest.mark.external
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CURL, "-sS", *args], capture_output=True, text=True, timeout=30)


@needs_curl
def test_curl_with_cacert():
    with serve(app, tls=True) as server:
        out = curl("--cacert", server.ca_file, "-w", "\n%{http_version} %{ssl_verify_result}",
                   server.url + "/hello")
        assert out.returncode == 0, out.stderr
        body, _, meta = out.stdout.rpartition("\n")
        assert body == "Hello, World!" and meta == "1.1 0"
        env = json.loads(curl("--cacert", server.ca_file, server.url.replace("127.0.0.1", "localhost")
                              + "/env").stdout)
        assert env["HTTPS"] == "on" and env["SSL_TLS_SNI"] == "localhost"
        # curl prefers h2 by ALPN, with http/1.1 as a fallback: it gets HTTP/1.1.
        h2 = curl("--http2", "--cacert", server.ca_file, "-w", "%{http_version}", "-o", "/dev/null",
                  server.url + "/hello")
        assert (h2.returncode, h2.stdout) == (0, "1.1"), h2.stderr
        # Without the CA, curl refuses the certificate.
        assert curl(server.url + "/hello").returncode == 60


@needs_curl
def test_curl_with_a_client_certificate():
    with serve(app, tls=True, ssl_verify_client="require") as server:
        out = curl("--cacert", server.ca_file, "--cert", server.client_cert_file("carol"), server.url + "/env")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["SSL_CLIENT_S_DN"].startswith("CN=carol")
        assert curl("--cacert", server.ca_file, server.url + "/env").returncode != 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_keep_alive_over_tls():
    with serve(app, tls=True, processes=2, threads_per_child=4) as server:
        out = subprocess.run(["wrk", "-t1", "-c16", "-d2s", server.url + "/hello"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        requests_done = int(re.search(r"(\d+) requests in", out.stdout).group(1))
        assert requests_done > 100 and "Non-2xx" not in out.stdout and "Socket errors" not in out.stdout, out.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_renegotiation_is_refused():
    with serve(app, tls=True) as server:
        # TLS 1.2 (1.3 has no renegotiation); "R" asks s_client for one.
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2",
                              "-CAfile", server.ca_file],
                             input="R\n", capture_output=True, text=True, timeout=30)
        assert "Verify return code: 0 (ok)" in out.stdout  # the handshake itself was fine
        assert "RENEGOTIATING" in out.stderr and "no renegotiation" in out.stderr, out.stderr
        assert subprocess.run([CURL or "curl", "-sS", "--cacert", server.ca_file, server.url + "/hello"],
                              capture_output=True, text=True, timeout=30).stdout == "Hello, World!"
