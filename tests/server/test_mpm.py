"""The worker MPM's process behaviour, against the real server (issue 3).

Every test runs `python -m mpmserver` as a subprocess and checks what a user
would see: /proc, process titles, HTTP answers, the error log, exit codes.
Held requests (tests/apps/mpm_apps.py /hold) end when the test says so.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
import uuid

import pytest

from mpmserver.scoreboard import Scoreboard
from tests.apps.mpm_apps import release_path
from tests.support.client import get
from tests.support.load import Hammer, Sampler, busy_workers
from tests.support.server import alive, children_of, proc_title, wait_for
from tests.support.server import http as raw_http
from tests.support.timing import timing

MPM_APP = "tests.apps.mpm_apps:app"


# -- helpers -------------------------------------------------------------------

def auto(port: int) -> dict[str, str]:
    status, body = get(port, "/server-status?auto")
    assert status == 200, body
    out = {}
    for line in body.decode().splitlines()[1:]:
        k, _, v = line.partition(": ")
        out[k] = v
    return out


def auto_or_empty(port: int) -> dict[str, str]:
    """?auto, or {} while a restart that stops children now (HUP) cuts the request."""
    try:
        return auto(port)
    except (OSError, http.client.HTTPException):
        return {}


class Holder:
    """Requests to /hold that stay in a worker until release()."""

    def __init__(self, port: int):
        self.port = port
        self.key = uuid.uuid4().hex
        self.threads: list[threading.Thread] = []
        self.results: list[tuple[int, bytes] | BaseException] = []

    def hold(self, n: int) -> None:
        for _ in range(n):
            t = threading.Thread(target=self._one, daemon=True)
            t.start()
            self.threads.append(t)

    def _one(self) -> None:
        try:
            self.results.append(get(self.port, f"/hold?key={self.key}", timeout=40))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.results.append(exc)

    def release(self, timeout: float = 20.0) -> None:
        open(release_path(self.key), "w").close()
        for t in self.threads:
            t.join(timeout)

    def cleanup(self) -> None:
        try:
            os.unlink(release_path(self.key))
        except OSError:
            pass


@pytest.fixture
def holder_factory():
    made: list[Holder] = []

    def make(port: int) -> Holder:
        h = Holder(port)
        made.append(h)
        return h
    yield make
    for h in made:
        open(release_path(h.key), "w").close()  # never leave a child blocked
    for h in made:
        for t in h.threads:
            t.join(5)
        h.cleanup()


def comm(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


# -- the process tree ----------------------------------------------------------------

def test_process_tree_titles_and_threads(server_factory):
    s = server_factory("--start-servers", "3", "--threads-per-child", "3", "--min-spare-threads", "1",
                       "--max-spare-threads", "64", "--max-request-workers", "9", app=MPM_APP).start()
    kids = wait_for(lambda: (k := s.children()) and len(k) == 3 and k, 10, what="3 children")
    assert proc_title(s.pid) == f"mpmserver: master [{MPM_APP}]"
    # The master forks nothing but its children: no grandchildren anywhere.
    assert all(children_of(k) == [] for k in kids)
    # A child names itself just after the fork: wait for it, bounded.
    expected = [f"mpmserver: child {i} gen 0" for i in range(3)]
    wait_for(lambda: sorted(proc_title(k) for k in kids) == expected, 10, what=f"the children titled {expected}")
    for k in kids:
        def named(k=k):
            names = sorted(comm(k, t) for t in tasks(k))
            return names if "mpm-listener" in names else None
        names = wait_for(named, 10, what=f"child {k}'s threads to be named")
        # ThreadsPerChild workers + one listener + the main thread, and no other thread.
        assert len(names) == 3 + 1 + 1, names
        assert names.count("mpm-listener") == 1
        assert sorted(n for n in names if n.startswith("mpm-worker-")) == \
            ["mpm-worker-0", "mpm-worker-1", "mpm-worker-2"]


# -- idle server maintenance ------------------------------------------------------------

def describe(path, threads_per_child: int) -> str:
    """Per child: slot, connections it holds, accepting or not, its threads' states."""
    from mpmserver.scoreboard import STATUS_CHARS
    sb = Scoreboard.attach(str(path))
    try:
        snap = sb.snapshot()
    finally:
        sb.close(remove=False)
    return "; ".join(
        f"slot {p.slot}: {p.connections} conns, {'not ' if p.not_accepting else ''}accepting, "
        f"threads {''.join(STATUS_CHARS[w.status] for w in p.workers[:threads_per_child])}"
        for p in snap.processes if p.pid)


def test_children_grow_to_the_limit_and_shrink_back(server_factory, holder_factory, tmp_path):
    board = tmp_path / "scoreboard"
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", "--min-spare-threads", "2",
                       "--max-spare-threads", "4", "--max-request-workers", "8", "--status-path",
                       "/server-status", "--scoreboard-file", str(board), app=MPM_APP).start()
    sampler = Sampler(s.pid)
    try:
        h = holder_factory(s.port)
        # More requests than MaxRequestWorkers: the extra ones wait in the listen queue.
        h.hold(10)
        try:
            wait_for(lambda: len(s.children()) == 4, 20, 0.05,
                     "children to grow to MaxRequestWorkers/ThreadsPerChild = 4")
            # Every one of the 8 threads serves a request: none waits inside a
            # child behind a busy thread while another thread is idle.
            wait_for(lambda: busy_workers(board) == 8, 10, 0.05, "all 8 workers to be busy")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; scoreboard: {describe(board, 2)}") from None
        # At the limit the server stays there, however long the overload lasts:
        # two more maintenance cycles (the sampler watches) must not fork.
        time.sleep(2.5)
        assert len(s.children()) == 4
        h.release()
        assert [r for r in h.results if not (isinstance(r, tuple) and r[0] == 200)] == []
        assert len(h.results) == 10
        # Load gone: idle threads fall back within MaxSpareThreads (2 children x 2 threads = 4).
        wait_for(lambda: len(s.children()) <= 2, 20, 0.1, "children to fall back to MaxSpareThreads/2 = 2")
        info = wait_for(lambda: (a := auto(s.port)) and int(a["Processes"]) <= 2 and a, 10, 0.2,
                        "the scoreboard to show the stopped children gone")
        assert int(info["IdleWorkers"]) + int(info["BusyWorkers"]) <= 4
        assert int(info["IdleWorkers"]) >= 1
    finally:
        seen = sampler.stop()
    assert seen <= 4, f"{seen} live children seen with MaxRequestWorkers 8 / ThreadsPerChild 2"


# -- recycling -------------------------------------------------------------------------------

@pytest.mark.parametrize("keep_alive", [False, True], ids=["close", "keepalive"])
def test_max_connections_per_child_recycles_without_losing_a_request(server_factory, keep_alive):
    s = server_factory("--start-servers", "2", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "8",
                       "--max-connections-per-child", "5", "--keep-alive-timeout", "1", "--log-level", "info",
                       app=MPM_APP).start()
    first = set(s.children())
    hammers = [Hammer(s.port, "/pid", keep_alive=keep_alive).start() for _ in range(2)]
    try:
        wait_for(lambda: len({p for h in hammers for p in h.pids()} - first) >= 3, 25, 0.05,
                 "at least 3 replacement children to serve requests")
    finally:
        for h in hammers:
            h.stop()
    failures = [f for h in hammers for f in h.failures]
    assert failures == [], failures[:5]
    assert sum(h.ok for h in hammers) >= 10
    assert "reached MaxConnectionsPerChild (5), recycling" in s.stderr
    # Recycled children exit 0: nothing reported as killed or crashed.
    assert "exit signal" not in s.stderr and "crashed" not in s.stderr


def test_max_memory_per_child_recycles_gracefully(server_factory):
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "4",
                       "--max-memory-per-child", "64M", "--log-level", "notice", app=MPM_APP).start()
    hammer = Hammer(s.port, "/pid").start()
    try:
        wait_for(lambda: hammer.ok >= 3, 10, 0.02, "the steady client to get answers")
        status, body = get(s.port, "/grow?mb=80")
        assert status == 200
        fat = int(body)
        wait_for(lambda: not alive(fat), 15, 0.05, "the child past MaxMemoryPerChild to exit")
        wait_for(lambda: hammer.pids() - {fat}, 15, 0.05, "a replacement child to serve")
        n = hammer.ok
        wait_for(lambda: hammer.ok >= n + 3, 10, 0.02, "answers after the recycling")
    finally:
        hammer.stop()
    assert hammer.failures == [], hammer.failures[:5]
    assert "passed MaxMemoryPerChild 64 MB, recycling" in s.stderr
    assert "exit signal" not in s.stderr


# -- generations -----------------------------------------------------------------------------

# A child forked by maintenance just before a graceful restart used to start
# its listener although it had been told to stop, accept a keep-alive client's
# new connection, and exit at once (a reset). It now exits without touching
# the listening sockets (child.py, _ChildSignals.attach).
def test_graceful_restart_under_load_loses_nothing(server_factory, holder_factory):
    s = server_factory("--start-servers", "2", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "8", "--server-limit", "4",
                       "--keep-alive-timeout", "1", "--status-path", "/server-status", "--log-level", "debug",
                       app=MPM_APP).start()
    sampler = Sampler(s.pid)
    old = set(s.children())
    h = holder_factory(s.port)
    h.hold(1)  # in flight across the restart: its thread must show G and it must complete
    wait_for(lambda: int(auto(s.port)["BusyWorkers"]) >= 2, 10, 0.05, "the held request to be running")
    hammer = Hammer(s.port, "/hello").start()
    ka_hammer = Hammer(s.port, "/hello", keep_alive=True).start()
    try:
        wait_for(lambda: hammer.ok >= 5, 10, 0.02, "the steady client to get answers")
        s.signal(signal.SIGUSR1)
        wait_for(lambda: any(proc_title(p).endswith("gen 1") for p in s.children()), 10, 0.05,
                 "new-generation children")
        sb = wait_for(lambda: "G" in (a := auto(s.port))["Scoreboard"] and a, 10, 0.05,
                      "the old generation's busy thread to show G")
        assert sb["ParentServerConfigGeneration"] == "1"
        # The old child with the held request is still alive, finishing it.
        assert old & set(s.children())
        n = hammer.ok
        wait_for(lambda: hammer.ok >= n + 5, 10, 0.02, "answers after the restart")
        h.release()
        wait_for(lambda: not (old & set(s.children())), 15, 0.05, "the old generation to exit")
        s.signal(signal.SIGUSR1)
        wait_for(lambda: any(proc_title(p).endswith("gen 2") for p in s.children()), 10, 0.05,
                 "a second restart")
        n = hammer.ok
        wait_for(lambda: hammer.ok >= n + 5, 10, 0.02, "answers after the second restart")
    finally:
        hammer.stop()
        ka_hammer.stop()
        seen = sampler.stop()
    assert hammer.failures == [], (hammer.failures[:5], s.stderr[-3000:])
    assert ka_hammer.failures == [], (ka_hammer.failures[:5], s.stderr[-3000:])
    assert ka_hammer.ok >= 10
    assert h.results and h.results[0][0] == 200, h.results
    assert s.proc.poll() is None
    # Old and new generations together never take more than ServerLimit processes.
    assert seen <= 4, seen


def test_hup_zeroes_the_scoreboard_usr1_keeps_it(server_factory):
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "4",
                       "--status-path", "/server-status", app=MPM_APP).start()
    for _ in range(20):
        assert get(s.port, "/hello")[0] == 200
    before = int(auto(s.port)["Total Accesses"])
    assert before >= 20
    s.signal(signal.SIGUSR1)
    a = wait_for(lambda: (a := auto(s.port))["ParentServerConfigGeneration"] == "1" and a, 10, 0.05,
                 "generation 1")
    assert int(a["Total Accesses"]) >= before
    s.signal(signal.SIGHUP)
    a = wait_for(lambda: (a := auto_or_empty(s.port)).get("ParentServerConfigGeneration") == "2" and a,
                 20, 0.05, "generation 2")
    # Only the requests since the HUP (the status requests themselves) are counted.
    assert int(a["Total Accesses"]) < 5


# -- hung requests ----------------------------------------------------------------------------

def test_request_timeout_stops_and_replaces_a_hung_child(server_factory):
    s = server_factory("--start-servers", "1", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "4",
                       "--request-timeout", "1", "--graceful-shutdown-timeout", "1", app=MPM_APP).start()
    [victim] = wait_for(lambda: (k := s.children()) and len(k) == 1 and k, 10, what="one child")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    try:
        sock.sendall(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: "RequestTimeout: request 'GET /forever HTTP/1.1'" in s.stderr, 10, 0.05,
                 "the hung request to be logged")
        assert "127.0.0.1" in s.stderr.split("RequestTimeout: request")[1].splitlines()[0]
        wait_for(lambda: not alive(victim), 15, 0.05, "the hung child to be killed")
        assert "did not finish its hung request, killing it" in s.stderr
        # The killed child's connection is closed, not left hanging.
        sock.settimeout(10)
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    wait_for(lambda: (k := s.children()) and victim not in k, 10, what="a replacement child")
    assert get(s.port, "/hello") == (200, b"Hello, World!")
    assert s.proc.poll() is None


# -- the fork-storm guard ------------------------------------------------------------------------

def test_app_failing_at_import_stops_the_server(server_factory, record_property):
    s = server_factory("--start-servers", "2", "--threads-per-child", "2", app="tests.apps.broken:app")
    t0 = time.monotonic()
    s.start(wait=False)
    code = s.wait_exit(10)  # the behaviour: it exits (a fork storm would not)
    elapsed = time.monotonic() - t0
    assert code != 0
    timing(record_property, "fork-storm guard: a server whose app fails at import exits after", elapsed, "s", 3)
    err = s.stderr
    assert "Traceback" in err and "this app module is broken on purpose" in err
    assert "Fatal error" in err and "exiting" in err
    # No respawns: at most StartServers children ever tried to load the app.
    assert err.count("failed to load the WSGI app") <= 2


@pytest.mark.parametrize("path", ["/crash", "/exit"], ids=["sigkill", "os_exit"])
def test_dying_children_are_replaced_at_a_bounded_rate(server_factory, path):
    s = server_factory("--start-servers", "2", "--threads-per-child", "2", "--min-spare-threads", "1",
                       "--max-spare-threads", "8", "--max-request-workers", "4", "--server-limit", "2",
                       app=MPM_APP).start()
    sampler = Sampler(s.pid)
    crashes = 0  # requests whose child died before answering: the connection ends with no byte
    answered: list[bytes] = []  # requests to the dying path that got an answer anyway
    served = 0
    pids: set[int] = set()
    t_end = time.monotonic() + 4.0
    try:
        while time.monotonic() < t_end:
            try:
                resp = raw_http(s.port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode(),
                                timeout=5)
            except ConnectionResetError:
                resp = b""
            if resp:
                answered.append(resp[:100])
            else:
                crashes += 1
            try:
                status, body = get(s.port, "/pid", timeout=5)
                if status == 200:
                    served += 1
                    pids.add(json.loads(body)["pid"])
            except OSError:
                pass
    finally:
        seen = sampler.stop()
    assert s.proc.poll() is None, "a crashing app must not take the server down"
    # Every request to the dying path killed its child, and the server kept
    # serving between the deaths (the replacements answer).
    assert answered == [], answered[:3]
    assert crashes >= 3, f"{crashes} children died in 4 s"
    assert served >= 3, f"{served} requests served between {crashes} deaths"
    # Never more processes than ServerLimit children (+ the master, not counted here).
    assert seen <= 2, seen
    if path == "/crash":
        wait_for(lambda: "children are killed successively" in s.stderr, 10, 0.05, "the fork-storm warning")
    # Beyond 3 in a row, at most one replacement per maintenance cycle (~1/s) over ~4 s,
    # plus the 3 immediate ones and the 2 first children.
    assert len(pids) >= 3, "the children were not replaced"
    assert len(pids) <= 2 + 3 + 6, f"{len(pids)} children in 4 s"
    # It still serves once the crashes stop.
    wait_for(lambda: get(s.port, "/hello") == (200, b"Hello, World!"), 15, 0.1, "service to resume")
