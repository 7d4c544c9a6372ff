"""A module whose WSGI app is called `app` (no `application`)."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
    return [b"app-only"]
