"""An app that leaves an orphan behind: the shell it runs exits at once, and
its background `sleep` is re-parented to the nearest reaper (PID 1 of the
namespace: the master, in tests/external/test_pid1.py)."""

import subprocess


def app(environ, start_response):
    if environ["PATH_INFO"] == "/orphan":
        seconds = environ.get("QUERY_STRING") or "1.5"
        subprocess.run(["sh", "-c", f"sleep {float(seconds)} &"], check=True)
        body = b"left an orphan\n"
    else:
        body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
