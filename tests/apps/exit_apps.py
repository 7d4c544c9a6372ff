"""Apps whose child process dies in the middle of a request (tests/server/test_master_exits.py).

/exit?code=N ends the child with os._exit(N) from the worker thread, as an app
or a C extension giving up would; /signal?sig=N kills the child with signal
N. Everything else is tests.apps.basic's raw_app (/hello, /pid, ...).
"""

import os
import resource
import signal
import threading
import time

from tests.apps.basic import raw_app


def _query_int(environ, name: str) -> int:
    return int(environ.get("QUERY_STRING", "").partition(f"{name}=")[2].partition("&")[0])


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/exit":
        os._exit(_query_int(environ, "code"))
    if path == "/signal":
        # No core file left behind by the test.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # To this very thread, so that it dies here and not after answering.
        signal.pthread_kill(threading.get_ident(), _query_int(environ, "sig"))
        time.sleep(30)
    return raw_app(environ, start_response)
