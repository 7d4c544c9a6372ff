"""A real HAProxy for the tests that put one in front of mpmserver (reverse
proxy, agent-check, the fleet): where the binary is, starting it on a config
it has checked first, stopping it, and reading its stats socket."""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
from typing import IO

HAPROXY = shutil.which("haproxy") or (os.path.exists("/usr/sbin/haproxy") and "/usr/sbin/haproxy")
MISSING = "haproxy is not installed (Debian package haproxy; .ci/run installs it)"


def start(config_path: str, stderr: int | IO = subprocess.PIPE) -> subprocess.Popen:
    """Check the config (failing the test with HAProxy's words), then run it
    in the foreground in a session of its own."""
    check = subprocess.run([HAPROXY, "-c", "-f", config_path], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    return subprocess.Popen([HAPROXY, "-db", "-f", config_path], stdout=subprocess.DEVNULL, stderr=stderr,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()


def show_stat(stats_sock: str, backend: str = "be") -> dict[str, dict[str, str]]:
    """`show stat` rows of one backend, by server name."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(stats_sock)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {r["svname"]: r for r in rows if r["pxname"] == backend}
