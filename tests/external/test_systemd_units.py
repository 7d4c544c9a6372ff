"""conf/mpmserver.service and conf/mpmserver.socket pass `systemd-analyze
verify` with the one line the service says to edit for the machine, the
ExecStart path of the installed script (issue 26 item 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ROOT

pytestmark = pytest.mark.external

ANALYZE = shutil.which("systemd-analyze")
SAMPLE_PATH = "/usr/local/bin/mpmserver"


def installed_script() -> str:
    """Where `command -v mpmserver` finds it, else beside this Python (a venv)."""
    found = shutil.which("mpmserver") or str(Path(sys.executable).with_name("mpmserver"))
    assert Path(found).exists(), "mpmserver is not installed as a script (pip install -e .)"
    return found


def verify(units: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, "verify", str(units / "mpmserver.service"), str(units / "mpmserver.socket")],
                          cwd=units, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_units_verify_with_the_documented_edit(tmp_path):
    service = (ROOT / "conf" / "mpmserver.service").read_text()
    shutil.copy(ROOT / "conf" / "mpmserver.socket", tmp_path)
    assert f"ExecStart={SAMPLE_PATH} " in service
    (tmp_path / "mpmserver.service").write_text(service.replace(f"ExecStart={SAMPLE_PATH} ",
                                                                f"ExecStart={installed_script()} "))
    done = verify(tmp_path)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    # As written, only the path can fail (where the script is not in /usr/local/bin).
    shutil.copy(ROOT / "conf" / "mpmserver.service", tmp_path)
    as_written = verify(tmp_path)
    if not Path(SAMPLE_PATH).exists():
        assert as_written.stderr.strip() == (f"mpmserver.service: Command {SAMPLE_PATH} is not executable: "
                                             "No such file or directory"), as_written.stderr

