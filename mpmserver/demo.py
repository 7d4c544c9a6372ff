"""The built-in demo app: what `mpmserver` serves when given no app."""

from __future__ import annotations

import html
import os
import threading
from typing import Callable, Iterable

from . import SERVER_SOFTWARE

# The app spec `mpmserver` serves when given no app (cli.py), and that the
# master knows is safe to import as root.
DEMO_APP = "mpmserver.demo:app"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>mpmserver</title></head>
<body>
<h1>It works!</h1>
<p>{software} is serving its demo app from child pid {pid}, thread {thread}.</p>
<p>Serve your own WSGI app with <code>mpmserver yourmodule:app</code>,
or with a configuration file: <code>mpmserver -f conf/mpmserver.conf</code>.</p>
<p>You asked for <code>{method} {path}</code>.</p>
</body></html>
"""


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    body = PAGE.format(
        software=SERVER_SOFTWARE,
        pid=os.getpid(),
        thread=threading.current_thread().name,
        method=html.escape(environ["REQUEST_METHOD"]),
        path=html.escape(environ.get("PATH_INFO", "")),
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
