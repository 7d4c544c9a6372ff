"""Admission across children: a busy child leaves new connections to its
siblings, and keep-alive clients are spread over the children."""

import os
import socket
import threading

from tests.support.server import read_response, two_children, wait_for


def test_keepalive_clients_are_spread_over_children(server_factory, tmp_path):
    s, sb = two_children(server_factory, tmp_path, 4, 16)
    socks = []
    try:
        # Open connections that send nothing yet (as browsers pre-open them):
        # no worker is busy, so only the balance between children decides.
        # Each is opened once the last is counted, so that every decision sees
        # the one before (a burst on a loaded machine races the two
        # listeners instead: the slack below would have to be the burst).
        def counts(n: int):
            total = [p.connections for p in sb.snapshot().processes if p.pid]
            return total if sum(total) >= n else None
        for n in range(1, 41):
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
            per_child = wait_for(lambda: counts(n), 10, 0.001, f"{n} connections in the scoreboard")
        sb.close(remove=False)
        # Slack is ThreadsPerChild / 2 = 2 per child; allow for the two children
        # racing on the same accept.
        assert max(per_child) - min(per_child) <= 6, per_child
        for c in socks:
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        for c in socks:
            assert read_response(c)[0] == 200
    finally:
        for c in socks:
            c.close()


def test_busy_child_leaves_connections_to_its_sibling(server_factory, tmp_path):
    from mpmserver.scoreboard import SERVER_BUSY_WRITE

    s, sb = two_children(server_factory, tmp_path, 1, 8)
    done = []

    def slow():
        with socket.create_connection(("127.0.0.1", s.port), timeout=30) as c:
            c.sendall(b"GET /slow?t=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            done.append(read_response(c)[0])
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    wait_for(lambda: sb.snapshot().count_status(SERVER_BUSY_WRITE) == 1, 10, what="the slow request running")
    snap = sb.snapshot()
    (busy,) = [p.pid for p in snap.processes if p.pid and any(w.status == SERVER_BUSY_WRITE for w in p.workers)]
    (idle,) = [p.pid for p in snap.processes if p.pid and p.pid != busy]
    # While one child's only worker sleeps, every request is answered by the
    # other child, and the busy child accepts none of them (no connection to
    # pass on to its sibling either).
    import json

    pids = []
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            status, _, body, _ = read_response(c)
            assert status == 200
            pids.append(json.loads(body)["pid"])
    assert set(pids) == {idle}, f"answered by {pids}; the busy child is {busy}, its sibling {idle}"
    # Admission did it: the busy child, asked by a waiting connection, said
    # no and stopped accepting (the scoreboard says so); its sibling accepts.
    wait_for(lambda: {p.pid: p.not_accepting for p in sb.snapshot().processes if p.pid} == {busy: True, idle: False},
             10, what=f"the busy child {busy} not accepting, its sibling {idle} accepting")
    busy_child = [p for p in sb.snapshot().processes if p.pid == busy]
    assert busy_child and busy_child[0].connections == 1, "the busy child took a connection beside its slow one"
    t.join(10)
    assert done == [200]



def _all_threads_stopped(pid: int) -> bool:
    """Every thread of ``pid`` in state T (stopped), from /proc."""
    tasks = os.listdir(f"/proc/{pid}/task")
    states = []
    for tid in tasks:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            states.append(f.read().rsplit(")", 1)[1].split()[0])
    return all(st == "T" for st in states)


def test_stuck_sibling_does_not_block_and_clients_move_once_it_recovers(server_factory, tmp_path):
    import signal

    s, sb = two_children(server_factory, tmp_path, 4, 16, "--max-keep-alive-requests", "0")
    stuck = s.children()[1]
    os.kill(stuck, signal.SIGSTOP)
    # A stop is delivered when each thread next runs: on a loaded machine the
    # child's listener could still accept the first client after kill().
    wait_for(lambda: _all_threads_stopped(stuck), 10, what=f"child {stuck} stopped")
    conns = []
    try:
        # With one child stopped (its record still says "accepting"), the
        # other one must still take every client.
        for _ in range(16):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(c)[0] == 200
            conns.append(c)
        counts = {p.pid: p.connections for p in sb.snapshot().processes if p.pid}
        assert counts[stuck] == 0 and sum(counts.values()) == 16, counts
        os.kill(stuck, signal.SIGCONT)
        # Keep-alive clients that reconnect when told to close: some of them
        # end up on the recovered child (one at a time: the crowded child
        # paces its send-aways), with MaxKeepAliveRequests 0 too.
        def some_moved():
            for i, c in enumerate(conns):
                c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                status, headers, _, _ = read_response(c)
                assert status == 200
                if headers.get("connection") == "close":
                    c.close()
                    conns[i] = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            # A reconnected client may not be counted yet: another round then.
            counts = {p.pid: p.connections for p in sb.snapshot().processes if p.pid}
            return counts if sum(counts.values()) == 16 and counts[stuck] >= 3 else None
        counts = wait_for(some_moved, 30, 0, what="3 of 16 clients on the recovered child")
        assert counts[stuck] >= 3, counts
    finally:
        try:
            os.kill(stuck, signal.SIGCONT)
        except ProcessLookupError:
            pass
        for c in conns:
            c.close()
        sb.close(remove=False)
