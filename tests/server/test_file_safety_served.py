"""StatusShowQuery on a real server: the query string in /server-status and the scoreboard only when asked.

A held request in a real master's children (the status page, ?auto, the
scoreboard file, `mpmserver status`), and a finished request's line kept in
an in-process server's scoreboard (mpmserver.testing.serve).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.request
import uuid

import pytest

from mpmserver.testing import serve
from tests.apps.mpm_apps import release_path
from tests.support.files import SMALL
from tests.support.server import ROOT, Server, wait_for


def _held_request(s: Server, key: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=15)
    sock.sendall(f"GET /hold?key={key} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


@pytest.mark.parametrize("show", ["off", "on"])
def test_query_string_in_status_and_scoreboard_file_only_with_status_show_query(server_factory, tmp_path, show):
    key = uuid.uuid4().hex
    sb = tmp_path / "scoreboard"
    s = server_factory(*SMALL, "--status-path", "/server-status", "--scoreboard-file", str(sb),
                       "--status-show-query", show, app="tests.apps.mpm_apps:app").start()
    sock = _held_request(s, key)
    try:
        def page():
            with urllib.request.urlopen(s.url + "/server-status", timeout=10) as r:
                text = r.read().decode()
            return re.search(r"GET /hold(\?key=\w+)? HTTP/1\.1", text) and text
        html = wait_for(page, 10, 0.05, "the held request on the status page")
        with urllib.request.urlopen(s.url + "/server-status?auto", timeout=10) as r:
            auto = r.read().decode()
        board = sb.read_bytes()
        cli = subprocess.run([sys.executable, "-m", "mpmserver", "status", "--html", "--scoreboard-file",
                              str(sb)], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
    finally:
        open(release_path(key), "w").close()
        sock.close()
    shown = show == "on"
    assert (key in html) is shown and (key.encode() in board) is shown and (key in cli) is shown
    assert key not in auto
    assert (b"GET /hold?key=" if shown else b"GET /hold HTTP/1.1") in board


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]


@pytest.mark.parametrize("show", [False, True])
def test_a_finished_request_keeps_its_query_in_the_scoreboard_only_with_status_show_query(show):
    with serve(_hello, status_show_query=show, threads_per_child=1) as server:
        urllib.request.urlopen(server.url + "/page?token=s3cr3t", timeout=5).read()
        lines = [w.request for p in server.scoreboard().processes for w in p.workers if w.request]
    assert any(line.startswith("GET /page") for line in lines), lines
    assert any("s3cr3t" in line for line in lines) is show, lines
