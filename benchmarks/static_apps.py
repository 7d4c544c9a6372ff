"""The apps of benchmarks/static_files.py: a plain WSGI app (mpmserver's
Alias and Granian's mount serve the files beside it), and the same app
wrapped in WhiteNoise, as a Django or Flask deployment would without nginx.
STATIC_BENCH_ROOT names the directory served at /static/."""

import os


def app(environ, start_response):
    body = b"app"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _whitenoise():
    from whitenoise import WhiteNoise

    return WhiteNoise(app, root=os.environ["STATIC_BENCH_ROOT"], prefix="static/")


whitenoise_app = _whitenoise() if "STATIC_BENCH_ROOT" in os.environ else app
