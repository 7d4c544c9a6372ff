"""The benchmarking guide's pytest-benchmark record-then-compare example compares (issue 14)."""

import os
import subprocess
import sys

from tests.support.server import ROOT

# Not under xdist, which disables pytest-benchmark (this test itself may run under -n 2).
QUICK = ["--benchmark-only", "--benchmark-max-time=0.01", "--benchmark-min-rounds=1", "-q",
         "-p", "no:cacheprovider", "-p", "no:xdist", "benchmarks/test_micro_protocol.py"]


def test_record_then_compare_as_the_readme_says(tmp_path):
    readme = (ROOT / "docs" / "benchmarking.md").read_text()
    record = "pytest benchmarks/ --benchmark-autosave"
    compare = "pytest benchmarks/ --benchmark-compare"
    assert record in readme and compare in readme
    storage = f"--benchmark-storage={tmp_path}"
    for command in (record, compare):
        flag = command.split()[-1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS"))}
        out = subprocess.run([sys.executable, "-m", "pytest", flag, storage, *QUICK], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Comparing against benchmarks from" in out.stdout + out.stderr
