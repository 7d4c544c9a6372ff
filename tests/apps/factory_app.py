"""App specs beyond module:app: a factory with arguments, and the default names."""

CALLS = []


def create_app(greeting="hello", *, times=1):
    CALLS.append((greeting, times))

    def app(environ, start_response):
        body = (greeting * times).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return app


application = create_app("application")
app = create_app("app")
