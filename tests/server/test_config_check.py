"""-t checks what the start would find on disk (issue 26 item 5): the
directory of a unix socket must exist and be writable by the master."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.server import ROOT

NOBODY = 65534


def check(*args, cwd, user=None):
    return subprocess.run([sys.executable, "-m", "mpmserver", "-t", "mpmserver.demo:app", *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=60, user=user, **({"group": user, "extra_groups": []} if user else {}))


@pytest.fixture
def top(request):
    d = Path(tempfile.mkdtemp(prefix="mpmserver-check-"))
    d.chmod(0o755)  # reachable by nobody, for the test as root
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def test_a_unix_socket_in_a_missing_directory_fails_with_file_line_and_why(top):
    conf = top / "site.conf"
    conf.write_text("Listen 127.0.0.1:8000\nListen unix:/no/such/dir/s.sock\n")
    out = check("-f", str(conf), cwd=top)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (f"mpmserver: Syntax error on line 2 of {conf}: Listen: unix:/no/such/dir/s.sock: "
                          "its directory /no/such/dir does not exist\n")
    # The same socket in a directory that exists passes.
    conf.write_text(f"Listen unix:{top}/s.sock\n")
    ok = check("-f", str(conf), cwd=top)
    assert (ok.returncode, ok.stdout) == (0, "Syntax OK\n"), ok.stderr
    assert not (top / "s.sock").exists()  # -t binds nothing


def test_a_unix_socket_directory_the_master_cannot_write_fails(top):
    ro = top / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    # Root may write anywhere: as root, the master here is nobody.
    user = NOBODY if os.geteuid() == 0 else None
    out = check("--listen", f"unix:{ro}/s.sock", cwd=top, user=user)
    assert out.returncode == 1
    assert out.stderr.startswith(f"mpmserver: command line: --listen: unix:{ro}/s.sock: its directory {ro} "
                                 "is not writable by "), out.stderr
    assert "the user the master runs as" in out.stderr
