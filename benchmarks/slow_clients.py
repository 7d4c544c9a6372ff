"""Slow clients of any size beside new ones (issue 25 item 2's scenario).

    python benchmarks/slow_clients.py                      # the issue's: 50 x 1 MB up, 50 x 8 MB down at 1 KB/s
    python benchmarks/slow_clients.py --rate 64K --complete  # the same sizes, to the end, checked by SHA-256
    python benchmarks/slow_clients.py --port 8000          # another server already serving tests.apps.spool_app

Starts mpmserver with 2 children x 4 threads serving tests.apps.spool_app
(unless --port names a running server), opens the slow clients from one
selector loop (uploaders send ``--rate`` bytes a second; downloaders read
``--rate`` bytes a second through a 4 KiB receive buffer), and meanwhile
sends a probe (GET /hello on a new connection) every --probe-interval
seconds for --probe-seconds, reporting the probes' latencies. With
--complete it waits for every transfer to end and checks each one's SHA-256
(at 1 KB/s that takes hours: 8 MB at 1 KB/s is 8,000 s).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.apps.spool_app import pattern  # noqa: E402

TICK = 0.1
EXPECTED: dict[int, bytes] = {}  # SHA-256 of /download's body, by size


def size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


class Client:
    """One slow client, driven by the selector loop."""

    def __init__(self, port: int, upload: int, download: int, index: int) -> None:
        self.sock = socket.socket()
        if download:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        if download and download not in EXPECTED:
            EXPECTED[download] = hashlib.sha256(pattern(download)).digest()
        self.sock.setblocking(False)
        if upload:
            self.body = hashlib.sha256(b"%d" % index).digest() * (upload // 32)
            self.expected = f"{hashlib.sha256(self.body).hexdigest()} {upload} {upload}".encode()
            self.out = b"POST /upload/%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (
                index, upload)
        else:
            self.body = b""
            self.out = b"GET /download?%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % download
        self.sent = -len(self.out)  # the head goes first, whole
        self.download = download
        self.received = bytearray()
        self.done = False
        self.ok = False

    def tick(self, budget: int) -> None:
        """Send or read at most ``budget`` bytes of the body this tick."""
        try:
            if self.sent < 0:
                self.sent += self.sock.send(self.out[len(self.out) + self.sent:])
                if self.sent < 0:
                    return
            if self.body and self.sent < len(self.body):
                self.sent += self.sock.send(self.body[self.sent:self.sent + budget])
                return
            self._read(budget if self.download else 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.done = True

    def _read(self, budget: int) -> None:
        """Read up to ``budget`` bytes (BlockingIOError when none are there)."""
        while budget > 0:
            data = self.sock.recv(min(budget, 65536))
            if not data:
                break
            self.received += data
            budget -= len(data)
            if self.download and self._complete():
                break
        else:
            return
        self._finish()

    def _complete(self) -> bool:
        head_end = self.received.find(b"\r\n\r\n")
        return head_end >= 0 and len(self.received) >= head_end + 4 + self.download

    def _finish(self) -> None:
        self.done = True
        self.sock.close()
        head, _, body = bytes(self.received).partition(b"\r\n\r\n")
        if self.download:
            self.ok = head.startswith(b"HTTP/1.1 200") and hashlib.sha256(body).digest() == EXPECTED[self.download]
        else:
            self.ok = head.startswith(b"HTTP/1.1 200") and body == self.expected


def drive(clients: list[Client], rate: int, stop: threading.Event) -> None:
    budget = max(1, int(rate * TICK))
    while not stop.is_set() and not all(c.done for c in clients):
        t0 = time.monotonic()
        for c in clients:
            if not c.done:
                c.tick(budget)
        time.sleep(max(0.0, TICK - (time.monotonic() - t0)))


def probe(port: int, timeout: float) -> float | None:
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
    except OSError:
        return None
    return time.monotonic() - t0 if data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello") else None


def start_server(port: int, spool_dir: str, flags: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mpmserver", "tests.apps.spool_app:app", "--listen", f"127.0.0.1:{port}",
           "--fixed-servers", "2", "--threads-per-child", "4", "--max-request-workers", "8",
           "--spool-directory", spool_dir, "--access-log", "off", *flags]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while probe(port, 1) is None:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"the server did not start: {' '.join(cmd)}")
        time.sleep(0.1)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uploaders", type=int, default=50)
    ap.add_argument("--upload-size", type=size, default="1M")
    ap.add_argument("--downloaders", type=int, default=50)
    ap.add_argument("--download-size", type=size, default="8M")
    ap.add_argument("--rate", type=size, default="1K", help="bytes a second per slow client")
    ap.add_argument("--probe-seconds", type=float, default=60)
    ap.add_argument("--probe-interval", type=float, default=0.5)
    ap.add_argument("--probe-timeout", type=float, default=10)
    ap.add_argument("--complete", action="store_true", help="wait for every transfer and check it")
    ap.add_argument("--port", type=int, help="a server already serving tests.apps.spool_app")
    ap.add_argument("--server-flags", default="", help="more mpmserver flags, e.g. '--response-spool 0'")
    args = ap.parse_args()

    proc = None
    spool_dir = tempfile.mkdtemp(prefix="mpm-spool-bench-")
    os.chmod(spool_dir, 0o1777)
    port = args.port
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = start_server(port, spool_dir, args.server_flags.split())
    try:
        clients = [Client(port, args.upload_size, 0, i) for i in range(args.uploaders)]
        clients += [Client(port, 0, args.download_size, i) for i in range(args.downloaders)]
        stop = threading.Event()
        driver = threading.Thread(target=drive, args=(clients, args.rate, stop), daemon=True)
        t0 = time.monotonic()
        driver.start()
        latencies: list[float | None] = []
        while time.monotonic() - t0 < args.probe_seconds and not all(c.done for c in clients):
            latencies.append(probe(port, args.probe_timeout))
            time.sleep(args.probe_interval)
        if not args.complete:
            stop.set()
        driver.join()
        elapsed = time.monotonic() - t0
        report(args, latencies, clients, elapsed)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        os.rmdir(spool_dir)


def report(args: argparse.Namespace, latencies: list[float | None], clients: list[Client], elapsed: float) -> None:
    answered = sorted(x * 1000 for x in latencies if x is not None)
    print(f"{args.uploaders} uploaders x {args.upload_size} B, {args.downloaders} downloaders x "
          f"{args.download_size} B, {args.rate} B/s each; {elapsed:.1f} s")
    print(f"probes: {len(answered)} of {len(latencies)} answered within {args.probe_timeout:g} s")
    if answered:
        p99 = answered[min(len(answered) - 1, int(len(answered) * 0.99))]
        print(f"probe latency ms: median {statistics.median(answered):.1f}  p99 {p99:.1f}  max {answered[-1]:.1f}")
    ups = [c for c in clients if not c.download]
    downs = [c for c in clients if c.download]
    for name, group in (("uploads", ups), ("downloads", downs)):
        print(f"{name}: {sum(c.done for c in group)} of {len(group)} ended, {sum(c.ok for c in group)} complete "
              f"and intact (SHA-256)")


if __name__ == "__main__":
    main()
