"""WSGI app for tests/server/test_close.py: a request forks a helper that
lives on (as an app that starts a background job with os.fork() does), so
the helper holds a copy of the client's socket while the server closes it."""

import os
import time

HELPER_SECONDS = 30.0


def app(environ, start_response):
    pid = os.fork()
    if pid == 0:  # the helper: holds every descriptor the worker had, then goes
        try:
            time.sleep(HELPER_SECONDS)
        finally:
            os._exit(0)
    body = b"forked\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Helper-Pid", str(pid))])
    return [body]
