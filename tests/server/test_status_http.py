"""server-status over HTTP (StatusPath, StatusAllow), checked against /proc and
against `mpmserver status`, which reads the same scoreboard without HTTP."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import uuid

from tests.apps.mpm_apps import release_path
from tests.support.server import ROOT, read_response, wait_for

MPM_APP = "tests.apps.mpm_apps:app"
STATUS = ("--status-path", "/server-status")


def request(port: int, method: str, path: str, headers: dict | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def parse_auto(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines()[1:]:
        k, sep, v = line.partition(": ")
        assert sep, f"not a 'Key: value' line: {line!r}"
        out[k] = v
    return out


def auto(port: int) -> dict[str, str]:
    status, headers, body = request(port, "GET", "/server-status?auto")
    assert status == 200 and headers["content-type"].startswith("text/plain"), (status, body[:200])
    return parse_auto(body.decode())


def small(server_factory, *extra: str, **kw):
    return server_factory("--start-servers", "2", "--threads-per-child", "3", "--min-spare-threads", "1",
                          "--max-spare-threads", "64", "--max-request-workers", "12", *extra,
                          app=MPM_APP, **kw).start()


def test_status_page_is_off_unless_configured(server_factory):
    s = small(server_factory)
    status, _, body = request(s.port, "GET", "/server-status?auto")
    assert (status, body) == (404, b"not found")  # the app's own answer


def test_auto_agrees_with_proc(server_factory):
    s = small(server_factory, *STATUS)
    kids = wait_for(lambda: (k := s.children()) and len(k) == 2 and k, 10, what="2 children")
    # Wait until both children have every thread up (no S left).
    a = wait_for(lambda: (a := auto(s.port)) and a["Processes"] == "2" and
                 int(a["BusyWorkers"]) + int(a["IdleWorkers"]) == 6 and a, 10, 0.05,
                 "6 started workers in the scoreboard")
    assert a["ServerMPM"] == "worker"
    assert a["ParentServerConfigGeneration"] == "0"
    assert int(a["BusyWorkers"]) >= 1  # this very request
    assert a["Stopping"] == "0"
    board = a["Scoreboard"]
    # One character per slot within the configured daemons x ThreadsPerChild, as
    # Apache 2.4 writes it: live threads are exactly those of the 2 children x 3
    # threads, the rest open (.); disabled slots are left out, never blanks.
    assert set(board) <= set("_SRWKDCLGI.")
    assert len(board) == 12, board  # MaxRequestWorkers 12 / ThreadsPerChild 3 = 4 daemons x 3
    live = [c for c in board if c != "."]
    assert len(live) == 6, board
    # The pids on the HTML page are the master's children in /proc, and only they.
    _, _, page = request(s.port, "GET", "/server-status")
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>(no|yes)", page.decode())
    assert sorted(int(pid) for _, pid, _ in rows) == sorted(kids)
    assert {slot for slot, _, _ in rows} == {"0", "1"}
    # Requests are counted: 10 more requests, at least 10 more accesses.
    before = int(a["Total Accesses"])
    for _ in range(10):
        assert request(s.port, "GET", "/hello")[0] == 200
    after = wait_for(lambda: (n := int(auto(s.port)["Total Accesses"])) >= before + 10 and n, 5, 0.05,
                     "the accesses to be counted")
    assert after <= before + 10 + 5  # + the status requests, nothing invented


def test_html_shows_the_running_request(server_factory):
    # The query string identifies the request: shown only with StatusShowQuery On
    # (test_file_safety_served.py checks that it is left out otherwise).
    s = small(server_factory, *STATUS, "--status-show-query", "on")
    key = uuid.uuid4().hex
    row_re = re.compile(rf"<tr><td><b>(\d+)-0</b></td><td>(\d+)</td><td>[^<]*</td><td[^>]*><b>(.)</b>"
                        rf".*?<td>127\.0\.0\.1</td><td nowrap>GET /hold\?key={key} HTTP/1\.1</td>")

    def row():
        return row_re.search(request(s.port, "GET", "/server-status")[2].decode())
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=15)
    try:
        sock.sendall(f"GET /hold?key={key} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        m = wait_for(row, 10, 0.05, "the held request on the status page")
        assert m.group(3) == "W"
        assert int(m.group(2)) in s.children()
        open(release_path(key), "w").close()
        assert read_response(sock)[0] == 200
        # Once answered, its thread no longer shows it as being sent.
        seen = []

        def ended():
            m = row()
            seen.append(m.group(0) if m else None)
            return m and m.group(3) != "W" and m
        try:
            m = wait_for(ended, 10, 0.05, "the request to end")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last row seen: {seen[-1]!r}") from None
        assert m.group(3) in "_K"
    finally:
        sock.close()
        if os.path.exists(release_path(key)):
            os.unlink(release_path(key))


def test_status_allow_refuses_other_clients(server_factory):
    s = small(server_factory, *STATUS, "--status-allow", "10.0.0.0/8")
    status, headers, body = request(s.port, "GET", "/server-status?auto")
    assert status == 403
    assert b"127.0.0.1" in body and b"StatusAllow" in body  # says who was refused and what to change
    assert b"Scoreboard" not in body
    # Everything else is the app's as usual.
    assert request(s.port, "GET", "/hello")[0] == 200


def test_status_methods_paths_and_refresh(server_factory):
    s = small(server_factory, *STATUS)
    status, headers, body = request(s.port, "HEAD", "/server-status?auto")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 100
    status, headers, body = request(s.port, "POST", "/server-status", {"Content-Length": "0"})
    assert status == 405 and headers["allow"] == "GET, HEAD"
    # Only the exact path is the status page.
    assert request(s.port, "GET", "/server-status/x")[0] == 404
    assert request(s.port, "GET", "/server-statusx")[0] == 404
    status, headers, body = request(s.port, "GET", "/server-status?refresh=5")
    assert status == 200 and headers["refresh"] == "5"
    assert headers["content-type"].startswith("text/html") and body.startswith(b"<!DOCTYPE html>")


def test_mpmserver_status_reads_the_same_scoreboard(server_factory, tmp_path):
    path = tmp_path / "scoreboard"
    s = small(server_factory, *STATUS, "--scoreboard-file", str(path))
    wait_for(lambda: (a := auto(s.port))["Processes"] == "2" and
             int(a["BusyWorkers"]) + int(a["IdleWorkers"]) == 6, 10, 0.05, "6 started workers")
    out = subprocess.run([sys.executable, "-m", "mpmserver", "status", "--auto", "--scoreboard-file", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    cli = parse_auto(out.stdout)
    web = auto(s.port)
    for key in ("Processes", "Stopping", "ParentServerConfigGeneration", "ServerMPM"):
        assert cli[key] == web[key], key
    # The HTTP view counts its own request as busy; the offline one may not.
    assert int(cli["BusyWorkers"]) + int(cli["IdleWorkers"]) == 6
    # Each child's resident memory, published each second, in both views.
    children = parse_auto(out.stdout)["ChildResidentKBytes"].split()
    assert sorted(int(c.split(":")[1]) for c in children) == sorted(s.children())
    assert all(int(c.split(":")[2]) > 8 * 1024 for c in children), children  # kB, published at start
    assert int(auto(s.port)["ResidentKBytes"]) > 16 * 1024
    # The human summary: a line per child, and the grid with "." for open slots.
    out = subprocess.run([sys.executable, "-m", "mpmserver", "status", "--scoreboard-file", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert "Children: 2 (0 stopping)" in out.stdout and "Scoreboard:\n" in out.stdout
    assert sum(1 for line in out.stdout.splitlines() if " serving " in line) == 2
