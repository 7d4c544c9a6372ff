"""What the app sees of its client, as JSON (tests/server/test_reverse_proxy.py)."""

import json
import os

KEYS = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTPS", "SERVER_NAME", "SERVER_PORT", "HTTP_HOST",
        "HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")


def app(environ, start_response):
    seen = {k: environ.get(k) for k in KEYS}
    seen["pid"] = os.getpid()
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
