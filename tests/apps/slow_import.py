"""An app that takes a second to import, as a real one does (issue 16): a
child told to stop while it imports must not touch the listening sockets,
and restarts under load must lose nothing meanwhile. It serves
tests.apps.mpm_apps's app (/hello, /echo, /grow?mb=N, /pid ...)."""

import time

time.sleep(1.0)

from tests.apps.mpm_apps import app  # noqa: E402,F401
