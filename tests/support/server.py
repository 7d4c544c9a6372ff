"""Run the real mpmserver as a subprocess for a test, and talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mpmserver.scoreboard import Scoreboard

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Wait until predicate() is truthy; fail the test with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def threads_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def proc_title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Server:
    """`mpmserver APP --listen 127.0.0.1:PORT ARGS...` in its own session."""

    def __init__(self, *args: str, app: str | None = "tests.apps.basic:app", config: str | None = None,
                 tmp_path: Path | None = None, access_log: bool = False, port: int | None = None,
                 cwd: Path | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.args = list(args)
        self.app = app
        self.config = config
        self.tmp = tmp_path
        self.proc: subprocess.Popen | None = None
        self.access_log = access_log
        # Started elsewhere than the worktree (Chdir's tests): PYTHONPATH
        # still finds this mpmserver (and tests.apps).
        self.cwd = cwd or ROOT
        self.env = None if cwd is None and env is None else {
            **os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
        base = Path(tmp_path) if tmp_path else Path("/tmp")
        self.stderr_path = base / f"mpmserver-{self.port}.err"
        self.stdout_path = base / f"mpmserver-{self.port}.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "mpmserver"]
        if self.app:
            cmd.append(self.app)
        if self.config:
            cmd += ["-f", self.config]
        else:
            cmd += ["--listen", f"127.0.0.1:{self.port}"]
        if not self.access_log and not self.config:
            cmd += ["--access-log", "off"]
        return cmd + self.args

    def start(self, wait: bool = True) -> "Server":
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.command(), cwd=self.cwd, env=self.env, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.stderr}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    return s.recv(100).startswith(b"HTTP/1.1 ")
            except OSError:
                return False
        wait_for(ready, timeout, 0.05, "the server to answer")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def stdout(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def children(self) -> list[int]:
        return [p for p in children_of(self.pid) if alive(p)]

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(12)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        # Whatever happened, leave nothing behind: the whole session goes.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._err.close()
        self._out.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def http(port: int, raw: bytes, timeout: float = 10.0, read_until_close: bool = True) -> bytes:
    """Send raw bytes, return everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
            if not read_until_close:
                break
        return b"".join(chunks)


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    """Read one response with Content-Length or chunked framing from a socket.
    Returns (status, headers, body, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a full head: {buf!r}")
        buf += data
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if status in (100, 101):
        return status, headers, b"", buf
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed mid-body")
            buf += data
        return status, headers, buf[:n], buf[n:]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed mid-chunked-body")
                buf += data
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed mid-chunk")
                buf += data
            if size == 0:
                # no trailers from us
                return status, headers, body, buf[2:]
            body += buf[:size]
            buf = buf[size + 2:]
    body = buf
    while True:
        data = sock.recv(65536)
        if not data:
            return status, headers, body, b""
        body += data


def two_children(server_factory, tmp_path, threads: int, max_spare: int, *extra: str):
    """A server with 2 children of `threads` workers, once both serve; with
    its scoreboard reader."""
    sbfile = str(tmp_path / "sb")
    s = server_factory("--start-servers", "2", "--threads-per-child", str(threads), "--min-spare-threads", "1",
                       "--max-spare-threads", str(max_spare), "--max-request-workers", str(2 * threads),
                       "--scoreboard-file", sbfile, *extra).start()
    sb = Scoreboard.attach(sbfile)
    # Both children serving: every worker thread of both is idle, and the
    # readiness probe's connection (closed by its client) is gone from the
    # counts admission balances on.
    wait_for(lambda: (snap := sb.snapshot()).idle_workers == 2 * threads and snap.conns_total == 0, 15,
             what="both children ready, with no connection")
    return s, sb
