"""Apps for the MPM behaviour tests (tests/server/test_mpm.py, tests/server/test_status_http.py).

/hold?key=K blocks until the file /tmp/mpm-release-K exists, so a test decides
when held requests end instead of guessing a sleep long enough; /forever never
returns (RequestTimeout); /grow?mb=N keeps N MB resident in the child
(MaxMemoryPerChild); /runaway grows without answering (MaxMemoryPerChildHard). Everything else is tests.apps.basic's raw_app.
"""

import os
import time

from tests.apps.basic import raw_app

RELEASE_DIR = "/tmp"
HOLD_LIMIT = 30.0  # a forgotten release must not hang a child for ever
_hoard: list[bytearray] = []


def release_path(key: str) -> str:
    return os.path.join(RELEASE_DIR, f"mpm-release-{key}")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hold":
        key = environ.get("QUERY_STRING", "").partition("key=")[2].partition("&")[0]
        deadline = time.monotonic() + HOLD_LIMIT
        while not os.path.exists(release_path(key)) and time.monotonic() < deadline:
            time.sleep(0.05)
        body = f"released {os.getpid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/grow":
        # Keep N MB alive in this child (MaxMemoryPerChild); touched so it is resident.
        mb = int(environ.get("QUERY_STRING", "").partition("mb=")[2] or "1")
        _hoard.append(bytearray(b"x" * (mb << 20)))
        body = f"{os.getpid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/runaway":
        # Grows by 4 MB every 20 ms and never answers (MaxMemoryPerChildHard),
        # up to 1 GB or 30 s, so that a broken test cannot eat the machine.
        hoard = []
        deadline = time.monotonic() + HOLD_LIMIT
        while len(hoard) < 256 and time.monotonic() < deadline:
            hoard.append(bytearray(b"x" * (4 << 20)))
            time.sleep(0.02)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]
    if path == "/forever":
        while True:
            time.sleep(3600)
    return raw_app(environ, start_response)
