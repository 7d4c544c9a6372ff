"""The Django admin's static files, collected as a deployment collects them
(tests.apps.djangoproject.static_settings: ManifestStaticFilesStorage)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.server import ROOT

SETTINGS = "tests.apps.djangoproject.static_settings"
WSGI_APP = "tests.apps.djangoproject.static_wsgi:application"


def collected_static_root(request) -> Path:
    """STATIC_ROOT after collectstatic, in a world-readable directory (children
    run as nobody when the tests run as root); removed after the test."""
    top = Path(tempfile.mkdtemp(prefix="mpmserver-static-"))
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    top.chmod(0o755)
    root = top / "static_root"
    env = {**os.environ, "MPMSERVER_TEST_STATIC_ROOT": str(root), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "django", "collectstatic", "--noinput", "-v0", f"--settings={SETTINGS}"],
                   check=True, env=env, cwd=ROOT, timeout=120)
    return root
