"""The app of the fleet test (tests/external/test_fleet.py): answers with the host's name
and the child's pid, after ``delay`` seconds (a slow host)."""

import os
import time


def create_app(host="host", delay=0.0):
    def app(environ, start_response):
        if delay:
            time.sleep(delay)
        body = f"{host} {os.getpid()}\n".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return app
