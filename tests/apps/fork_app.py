"""WSGI app for tests/server/test_close.py: a request forks a helper that
lives on (as an app that starts a background job with os.fork() does), so
the helper holds a copy of the client's socket while the server closes it."""

import fcntl
import json
import os
import time

HELPER_SECONDS = 30.0


def inheritable_sockets() -> list[str]:
    """The sockets of this process an exec would hand to a new program:
    those without FD_CLOEXEC (listening sockets, client connections...)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("socket:") and not fcntl.fcntl(int(name), fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                found.append(f"{name} -> {target}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return found


def app(environ, start_response):
    if environ["PATH_INFO"] == "/inheritable":
        body = json.dumps(inheritable_sockets()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
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
