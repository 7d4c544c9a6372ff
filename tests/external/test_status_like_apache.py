"""server-status ?auto's Scoreboard line against a real Apache httpd with the
same pool (issue 26): "." for an open slot, disabled slots (past
MaxRequestWorkers / ThreadsPerChild daemons or ThreadsPerChild threads) left
out, so both lines have daemons x ThreadsPerChild characters."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.support.server import free_port, wait_for

pytestmark = pytest.mark.external

APACHE = shutil.which("apache2") or shutil.which("httpd")
MODULES = Path("/usr/lib/apache2/modules")  # Debian's and Ubuntu's; CI installs apache2 there
# ServerLimit 4 x ThreadLimit 8 slots; 12 / 4 = 3 daemons x 4 threads configured; 2 started.
POOL = {"ServerLimit": 4, "ThreadLimit": 8, "ThreadsPerChild": 4, "MaxRequestWorkers": 12,
        "StartServers": 2, "MinSpareThreads": 2, "MaxSpareThreads": 12}


def scoreboard(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/server-status?auto", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return next(line for line in lines if line.startswith("Scoreboard: "))[len("Scoreboard: "):]


def settled(port: int) -> str | None:
    """The line once 2 children have started every thread (no S, 8 live)."""
    board = scoreboard(port)
    return board if "S" not in board and len(board.replace(".", "")) == 8 else None


@pytest.mark.skipif(APACHE is None or not (MODULES / "mod_mpm_worker.so").exists(),
                    reason="Apache httpd (apache2, with mod_mpm_worker and mod_status) is not installed")
def test_scoreboard_line_is_apaches(server_factory, tmp_path):
    port = free_port()
    pool = "\n".join(f"{k} {v}" for k, v in POOL.items())
    account = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"""ServerRoot {tmp_path}
LoadModule mpm_worker_module {MODULES}/mod_mpm_worker.so
LoadModule status_module {MODULES}/mod_status.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
Listen 127.0.0.1:{port}
PidFile {tmp_path}/httpd.pid
ErrorLog {tmp_path}/error.log
ServerName localhost
{account}{pool}
<Location /server-status>
SetHandler server-status
</Location>
""")
    subprocess.run([APACHE, "-f", str(conf), "-k", "start"], check=True, timeout=30)
    try:
        apache = wait_for(lambda: settled(port), 15, 0.1, "Apache's 2 children")
    finally:
        subprocess.run([APACHE, "-f", str(conf), "-k", "stop"], timeout=30)
    # The same directives as mpmserver's flags: ServerLimit -> --server-limit.
    flags = [a for k, v in POOL.items() for a in (f"--{re.sub(r'(?<!^)(?=[A-Z])', '-', k).lower()}", str(v))]
    s = server_factory(*flags, "--status-path", "/server-status").start()
    ours = wait_for(lambda: settled(s.port), 15, 0.1, "mpmserver's 2 children")
    assert len(ours) == len(apache) == 12, (ours, apache)
    assert " " not in ours and ours[8:] == apache[8:] == "...."
