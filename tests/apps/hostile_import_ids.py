"""An app that remembers who imported it, for tests/external/test_privileges.py.

`/import-ids` tells whether the module was loaded before the privilege drop
(PreloadApp On, in the root master) or after it (in the child, the default).
"""

import json
import os

IMPORTED_AS = {"resuid": os.getresuid(), "resgid": os.getresgid()}


def app(environ, start_response):
    if environ["PATH_INFO"] == "/import-ids":
        body = json.dumps({"imported_as": IMPORTED_AS, "running_as": os.getresuid()}).encode()
    else:
        body = b"not found"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


if os.environ.get("HOSTILE_REFUSE_UNPRIVILEGED") == "1" and os.geteuid() != 0:
    # Makes loading fail in a dropped child: the master must stop, not respawn.
    raise RuntimeError("hostile_import_ids: refusing to load without root (test of a fatal child start)")
