"""Issue 24's slow-handshake figures, measured once (not a CI test): TLS
clients that stall in their handshake, against mpmserver and gunicorn
(gthread), each at 2 processes x 4 threads with the same certificate.

  silent  N connections that connect and never send a ClientHello
  half    N connections that send half a ClientHello and stall

While they are open, P probes (each a new TLS connection, a handshake and
one GET) are timed one after another; a probe not answered within
--probe-timeout seconds counts as failed.

    python benchmarks/slow_handshakes.py [--stalled 500] [--probes 20] [--servers mpmserver,gunicorn]

Needs trustme and a hard RLIMIT_NOFILE above 2 x --stalled + a few hundred.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare import TLSFiles, make_tls_files  # noqa: E402

from mpmserver.bench.server import ServerProcess, free_port  # noqa: E402
from mpmserver.bench.workloads import server_directives  # noqa: E402

APP = "benchmarks.apps:app"
HOST = "127.0.0.1"


def command(name: str, port: int, tls: TLSFiles) -> list[str]:
    py = sys.executable
    if name == "mpmserver":
        return [py, "-m", "mpmserver", APP, "--listen", f"{HOST}:{port} https", "--certfile", tls.cert,
                "--keyfile", tls.key, "--access-log", "off", *server_directives(2, 4)]
    return [py, "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "4", "--keep-alive", "60",
            "-b", f"{HOST}:{port}", "--certfile", tls.cert, "--keyfile", tls.key, "--log-level", "warning", APP]


def half_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[:len(hello) // 2]


def probe(port: int, ctx: ssl.SSLContext, timeout: float) -> float | None:
    """Seconds for a new TLS connection's handshake and one GET; None if not answered in time."""
    start = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as s:
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                if not s.recv(100).startswith(b"HTTP/1.1 200"):
                    return None
    except OSError:
        return None
    return time.monotonic() - start


def run(name: str, mode: str, stalled: int, probes: int, timeout: float, tls: TLSFiles) -> str:
    port = free_port(HOST)
    ctx = tls.client_context()
    server = ServerProcess(command(name, port, tls), HOST, port, name=name, ready_path="/plaintext",
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT), tls=ctx)
    server.start(30)
    crowd: list[socket.socket] = []
    try:
        piece = half_hello()
        for _ in range(stalled):
            s = socket.create_connection((HOST, port), timeout=10)
            if mode == "half":
                s.sendall(piece)
            crowd.append(s)
        time.sleep(1.0)  # let the server take them all
        times = [probe(port, ctx, timeout) for _ in range(probes)]
    finally:
        for s in crowd:
            s.close()
        server.stop()
    ok = sorted(t for t in times if t is not None)
    if not ok:
        return f"{name:10} {mode:6} {stalled:5} stalled: 0/{probes} probes answered within {timeout:g} s"
    return (f"{name:10} {mode:6} {stalled:5} stalled: {len(ok)}/{probes} probes answered within {timeout:g} s; "
            f"median {statistics.median(ok) * 1000:.1f} ms, max {ok[-1] * 1000:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stalled", type=int, default=500)
    p.add_argument("--probes", type=int, default=20)
    p.add_argument("--probe-timeout", type=float, default=1.0)
    p.add_argument("--servers", default="mpmserver,gunicorn")
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    names = [n for n in args.servers.split(",") if n == "mpmserver" or importlib.util.find_spec(n)]
    with tempfile.TemporaryDirectory(prefix="mpmserver-slow-tls-") as d:
        tls = make_tls_files(d)
        for name in names:
            for mode in ("silent", "half"):
                print(run(name, mode, args.stalled, args.probes, args.probe_timeout, tls), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
