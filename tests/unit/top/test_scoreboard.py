import json
import multiprocessing
import os
import struct
import subprocess
import sys
import time

import pytest

from mpmserver import scoreboard as sbm
from mpmserver.scoreboard import (
    SERVER_BUSY_KEEPALIVE,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_DEAD,
    SERVER_GRACEFUL,
    SERVER_READY,
    SERVER_STARTING,
    STATUS_CHARS,
    Scoreboard,
    ScoreboardError,
)


@pytest.fixture
def sb():
    board = Scoreboard.create(3, 4)
    yield board
    board.close()


def test_status_constants_are_apaches():
    assert STATUS_CHARS == ".S_RWKLDCGI"
    assert (sbm.SERVER_DEAD, sbm.SERVER_READY, sbm.SERVER_BUSY_WRITE, sbm.SERVER_GRACEFUL,
            sbm.SERVER_IDLE_KILL) == (0, 2, 4, 9, 10)


def test_fresh_scoreboard_is_all_open_slots(sb):
    snap = sb.snapshot()
    assert (snap.server_limit, snap.thread_limit) == (3, 4)
    assert snap.master_pid == os.getpid()
    assert abs(snap.restart_time - time.time()) < 60
    assert [p.pid for p in snap.processes] == [0, 0, 0]
    assert all(len(p.workers) == 4 for p in snap.processes)
    assert snap.status_line() == "." * 12


def test_round_trip_through_record_apis(sb):
    sb.generation = 2
    sb.restart_time = 1234.5
    me = os.getpid()  # the child side records its writer's pid, which must match
    proc = sb.process(1)
    proc.spawned(me, 2)
    proc.set_connections(7, 3, 1, 2)
    proc.set_not_accepting(True)
    w = sb.worker(1, 2)
    w.thread_started(me, 99, 2)
    w.begin_connection("192.0.2.7:5555")
    before = time.time()
    w.begin_request(b"GET /a HTTP/1.1")
    w.end_request(100)
    w.set_status(SERVER_BUSY_KEEPALIVE)
    w.begin_request(b"POST /b HTTP/1.1")
    w.end_request(23)
    after = time.time()

    snap = sb.snapshot()
    assert (snap.generation, snap.restart_time) == (2, 1234.5)
    p = snap.processes[1]
    assert (p.slot, p.pid, p.generation, p.quiescing, p.not_accepting) == (1, me, 2, False, True)
    assert (p.connections, p.keep_alive, p.lingering_close, p.writing) == (7, 3, 1, 2)
    assert snap.conns_writing == 2
    ws = p.workers[2]
    assert ws.status == SERVER_BUSY_WRITE  # begin_request sets it, end_request leaves it
    assert (ws.pid, ws.tid, ws.generation) == (me, 99, 2)
    assert (ws.access_count, ws.my_access_count, ws.conn_count) == (2, 2, 2)
    assert (ws.bytes_served, ws.my_bytes_served, ws.conn_bytes) == (123, 123, 123)
    assert ws.request == "POST /b HTTP/1.1"
    assert ws.client == "192.0.2.7:5555"
    assert before <= ws.start_time <= ws.stop_time <= after
    assert ws.last_used == ws.stop_time
    assert ws.duration == pytest.approx(ws.stop_time - ws.start_time)
    assert ws.duration <= ws.total_duration <= after - before
    assert snap.status_line() == "....." + "." + "W" + "." + "...."


def test_layout_matches_the_documented_offsets(tmp_path):
    # External tools read the file by the layout in the module docstring.
    path = str(tmp_path / "sb")
    board = Scoreboard.create(2, 3, path)
    board.generation = 5
    board.count_spawn()
    board.count_spawn()
    board.count_restart(graceful=True)
    board.count_restart(graceful=False)
    board.count_restart(graceful=False)
    board.count_exit("memory")
    board.count_exit("crash")
    board.count_restart_failure()
    board.process(1).spawned(777, 5)
    board.process(1).set_recycle_cause(sbm.RECYCLE_MEMORY)
    board.process(1).set_tls(4, 2, (1, 0, 3, 0, 0, 0, 0, 7))
    board.process(1).count_static(1000)
    board.process(1).count_static(4000)
    w = board.worker(1, 2)
    w.thread_started(777, 8, 5)
    w.begin_connection("10.0.0.1:80")
    w.begin_request(b"GET / HTTP/1.1")
    w.end_request(50, 404)
    board.process(1).publish_rss(48 << 20)
    board.process(1).response_codes[sbm.response_cell(503)] += 1
    with open(path, "rb") as f:
        raw = f.read()
    board.close()
    assert sbm.LAYOUT_VERSION == 3
    cells = len(sbm.RESPONSE_CODES) + 2
    table = 64 + 128 + 2 * 168 + 6 * 384  # then 2 x (1 + 3) rows of responses
    assert len(raw) == sbm.scoreboard_size(2, 3) == table + 2 * 4 * 8 * cells
    assert struct.unpack_from("<8sIIIIII", raw, 0) == (b"MPMSCORE", 3, 64, 2, 3, 168, 384)
    assert struct.unpack_from("<q", raw, 40) == (5,)
    counters = 64
    assert struct.unpack_from("<Q", raw, counters)[0] % 2 == 0
    assert struct.unpack_from("<3Q", raw, counters + 8) == (2, 1, 2)
    assert sbm.EXIT_CAUSES == ("connections", "requests", "memory", "request_timeout", "crash")
    assert struct.unpack_from("<5Q", raw, counters + 32) == (0, 0, 1, 0, 1)
    assert struct.unpack_from("<Q", raw, counters + 72) == (1,)  # restart failures
    proc = 64 + 128 + 168
    assert struct.unpack_from("<qq", raw, proc + 8) == (777, 5)
    assert raw[proc + 63] == sbm.RECYCLE_MEMORY == 3
    assert struct.unpack_from("<QQ", raw, proc + 64) == (2, 5000)  # static_requests, static_bytes
    assert sbm.TLS_FAILURES == ("timeout", "closed", "plain_http", "not_tls", "alpn", "protocol", "certificate",
                                "other")
    assert struct.unpack_from("<Q", raw, proc + 96)[0] % 2 == 0
    assert struct.unpack_from("<qII8I", raw, proc + 104) == (os.getpid(), 4, 2, 1, 0, 3, 0, 0, 0, 0, 7)
    assert raw[proc + 152:proc + 160] == bytes(8)
    assert struct.unpack_from("=Q", raw, proc + 160) == (48 << 20,)  # rss
    listener_row = struct.unpack_from(f"={cells}Q", raw, table + 4 * 8 * cells)  # slot 1's first row
    assert listener_row[sbm.RESPONSE_CODES.index(503)] == 1 and sum(listener_row) == 1
    worker_row = struct.unpack_from(f"={cells}Q", raw, table + (4 + 1 + 2) * 8 * cells)  # slot 1, thread 2
    assert worker_row[sbm.RESPONSE_CODES.index(404)] == 1 and sum(worker_row) == 1
    rec = 64 + 128 + 2 * 168 + (1 * 3 + 2) * 384
    assert raw[rec + 8:rec + 8 + 14] == b"GET / HTTP/1.1"
    assert raw[rec + 72] == SERVER_BUSY_WRITE
    assert struct.unpack_from("<QQ", raw, rec + 120) == (1, 50)
    assert struct.unpack_from("<qqq", raw, rec + 168) == (777, 8, 5)
    assert raw[rec + 192:rec + 192 + 11] == b"10.0.0.1:80"
    # a request of microseconds lands in the first bucket (le 0.005)
    assert struct.unpack_from("<15Q", raw, rec + 240) == (1,) + (0,) * 14
    assert raw[rec + 360:rec + 384] == bytes(24)
    assert struct.unpack_from("<Q", raw, rec)[0] % 2 == 0


def test_tls_counts_reach_the_snapshot_only_from_the_slots_child(sb):
    sb.process(0).spawned(os.getpid(), 0)
    sb.process(0).set_tls(3, 1, (0, 0, 2, 0, 1, 0, 0, 0))
    p = sb.snapshot().processes[0]
    assert (p.tls_connections, p.tls_handshakes, p.tls_failures) == (3, 1, (0, 0, 2, 0, 1, 0, 0, 0))
    sb.process(0).spawned(os.getpid() + 1, 0)  # another child in the slot: the leftovers are not its own
    p = sb.snapshot().processes[0]
    assert (p.tls_connections, p.tls_handshakes, p.tls_failures) == (0, 0, (0,) * 8)


def test_request_line_and_client_are_cut_and_made_printable(sb):
    w = sb.worker(0, 0)
    w.thread_started(1, 1, 0)
    w.begin_connection("x" * 100)
    w.begin_request(b"GET /" + b"a" * 200 + b" HTTP/1.1")
    snap = sb.snapshot()
    assert snap.processes[0].workers[0].request == "GET /" + "a" * 59
    assert snap.processes[0].workers[0].client == "x" * 48
    w.begin_request(b"GET /\x1b[2J\xff\n HTTP/1.1")
    req = sb.snapshot().processes[0].workers[0].request
    assert req == "GET /\\x1b[2J\\xff\\x0a HTTP/1.1"


def test_slot_counters_survive_a_new_child_and_child_counters_do_not(sb):
    w = sb.worker(2, 1)
    w.thread_started(100, 1, 0)
    w.begin_connection("a")
    for _ in range(3):
        w.begin_request(b"GET / HTTP/1.1")
        w.end_request(10)
    w.thread_exited()
    assert sb.snapshot().processes[2].workers[1].status == SERVER_DEAD
    # the replacement child inherits the record object through fork
    pid = os.fork()
    if pid == 0:
        w.thread_started(200, 2, 1)
        os._exit(0)
    os.waitpid(pid, 0)
    ws = sb.snapshot().processes[2].workers[1]
    assert (ws.status, ws.pid, ws.generation) == (SERVER_READY, 200, 1)
    assert (ws.access_count, ws.bytes_served) == (3, 30)
    assert (ws.my_access_count, ws.my_bytes_served, ws.conn_count, ws.conn_bytes) == (0, 0, 0, 0)
    w.thread_started(300, 3, 2)
    w.begin_connection("b")
    w.begin_request(b"GET / HTTP/1.1")
    w.end_request(5)
    ws = sb.snapshot().processes[2].workers[1]
    assert (ws.access_count, ws.bytes_served, ws.my_access_count, ws.conn_bytes) == (4, 35, 1, 5)


def test_begin_connection_resets_connection_counters(sb):
    w = sb.worker(0, 1)
    w.thread_started(1, 1, 0)
    w.begin_connection("a")
    w.begin_request(b"GET / HTTP/1.1")
    w.end_request(10)
    w.begin_connection("b")
    w.begin_request(b"GET / HTTP/1.1")
    w.end_request(7)
    ws = sb.snapshot().processes[0].workers[1]
    assert (ws.conn_count, ws.conn_bytes, ws.my_access_count, ws.client) == (1, 7, 2, "b")


def test_process_record_master_and_child_sides(sb):
    p = sb.process(0)
    p.spawned(os.getpid(), 0)
    p.set_connections(5, 2)
    p.set_quiescing(True)
    s = sb.snapshot().processes[0]
    assert (s.pid, s.quiescing, s.connections, s.keep_alive) == (os.getpid(), True, 5, 2)
    sb.worker(0, 1).thread_started(os.getpid(), 1, 0)
    sb.worker(0, 1).begin_request(b"GET / HTTP/1.1")  # then the child crashes
    sb.worker(1, 0).thread_started(1, 1, 0)
    p.clear()
    snap = sb.snapshot()
    s = snap.processes[0]
    assert (s.pid, s.quiescing, s.connections, s.not_accepting) == (0, False, 0, False)
    assert snap.status_line() == "...._......."  # reaped child's threads are DEAD, slot 1 untouched


def test_dead_childs_connection_counts_do_not_show_against_its_successor(sb):
    # The child sub-record carries its writer's pid; a new pid in the slot
    # means the old counts are stale.
    sb.process(0).spawned(os.getpid(), 0)
    sb.process(0).set_connections(9, 9)
    sb.process(0).set_not_accepting(True)
    sb.process(0).spawned(os.getpid() + 100000, 1)
    s = sb.snapshot().processes[0]
    assert (s.connections, s.keep_alive, s.not_accepting) == (0, 0, False)


def test_reset_zeroes_records_but_keeps_the_global_record(sb):
    sb.generation = 3
    sb.process(1).spawned(50, 3)
    w = sb.worker(1, 1)
    w.thread_started(50, 1, 3)
    w.begin_request(b"GET / HTTP/1.1")
    w.end_request(9)
    sb.reset()
    snap = sb.snapshot()
    assert snap.generation == 3 and snap.master_pid == os.getpid()
    assert all(p.pid == 0 for p in snap.processes)
    assert snap.total_accesses == 0 and snap.total_bytes == 0
    assert snap.status_line() == "." * 12
    # records handed out before the reset start again from zero
    w2 = sb.worker(1, 1)
    w2.thread_started(60, 1, 3)
    w2.begin_request(b"GET / HTTP/1.1")
    w2.end_request(1)
    assert sb.snapshot().processes[1].workers[1].access_count == 1


def test_out_of_range_slot_is_an_index_error(sb):
    with pytest.raises(IndexError, match="outside 3 x 4"):
        sb.worker(3, 0)
    with pytest.raises(IndexError):
        sb.worker(0, 4)
    with pytest.raises(IndexError):
        sb.process(-1)


def test_bad_limits_are_refused():
    with pytest.raises(ScoreboardError, match="ServerLimit 0"):
        Scoreboard.create(0, 4)


def test_mpm_counts_follow_mod_status(sb):
    sb.generation = 1
    statuses = {
        0: (1, False, [SERVER_READY, SERVER_BUSY_WRITE, SERVER_GRACEFUL, SERVER_STARTING]),
        1: (0, False, [SERVER_READY, SERVER_BUSY_READ, SERVER_DEAD, SERVER_DEAD]),  # old gen
        2: (1, True, [SERVER_READY, SERVER_BUSY_WRITE, SERVER_DEAD, SERVER_DEAD]),  # quiescing
    }
    for slot, (gen, quiescing, sts) in statuses.items():
        sb.process(slot).spawned(1000 + slot, gen)
        sb.process(slot).set_quiescing(quiescing)
        for t, st in enumerate(sts):
            sb.worker(slot, t).thread_started(1000 + slot, t, gen)
            sb.worker(slot, t).set_status(st)
    snap = sb.snapshot()
    # busy: W, G (slot 0) and R (old generation, not quiescing); quiescing slot 2 not counted
    assert snap.busy_workers == 3
    assert snap.graceful_workers == 1
    # idle: READY in current generation, live, not quiescing processes only
    assert snap.idle_workers == 1
    assert snap.processes_alive == 3
    assert snap.stopping == 2
    assert snap.status_line() == "_WGS_R.._W.."


def _writer(board, stop, started):
    w = board.worker(1, 2)
    w.thread_started(os.getpid(), 7, 0)
    lines = (b"GET /short HTTP/1.1", b"POST /" + b"L" * 80)
    started.set()
    i = 0
    while not stop.is_set():
        for _ in range(200):
            w.begin_request(lines[i & 1])
            w.end_request(3)
            i += 1
    os._exit(0)


def test_torn_reads_never_show_inconsistent_records():
    board = Scoreboard.create(2, 4)
    ctx = multiprocessing.get_context("fork")
    stop, started = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_writer, args=(board, stop, started))
    proc.start()
    try:
        assert started.wait(5), "writer process did not start"
        valid = {"GET /short HTTP/1.1", ("POST /" + "L" * 80)[:64]}
        last = -1
        snaps = 0
        deadline = time.monotonic() + 2.0
        # Until enough snapshots were taken and the writer has written (on a
        # loaded machine the writer process may be scheduled late), bounded.
        give_up = time.monotonic() + 15.0
        while (time.monotonic() < deadline and snaps < 10000 or last <= 0) and time.monotonic() < give_up:
            w = board.snapshot().processes[1].workers[2]
            snaps += 1
            assert w.access_count >= last
            last = w.access_count
            assert w.my_access_count == w.access_count
            assert w.bytes_served == 3 * w.access_count
            assert w.request in valid or (w.access_count == 0 and w.request == "")
        assert snaps >= 100 and last > 0
    finally:
        stop.set()
        proc.join(5)
        board.close()
    assert proc.exitcode == 0


def test_record_stuck_mid_write_falls_back_to_last_good_copy(tmp_path):
    # A child killed between its two sequence bumps leaves an odd counter.
    path = str(tmp_path / "sb")
    board = Scoreboard.create(1, 2, path)
    w = board.worker(0, 1)
    w.thread_started(1, 1, 0)
    w.begin_request(b"GET / HTTP/1.1")
    w.end_request(11)
    assert board.snapshot().processes[0].workers[1].access_count == 1
    off = 64 + 128 + sbm.PROCESS_SIZE + sbm.WORKER_SIZE  # slot 0, thread 1
    with open(path, "r+b") as f:
        seq = struct.unpack_from("<Q", f.read(), off)[0]
        f.seek(off)
        f.write(struct.pack("<Q", seq + 1))
        f.seek(off + 120)
        f.write(struct.pack("<Q", 999999))  # torn garbage
    ws = board.snapshot().processes[0].workers[1]
    assert ws.access_count == 1
    # a new reader with no good copy shows a blank record, never the garbage
    reader = Scoreboard.attach(path)
    assert reader.snapshot().processes[0].workers[1].access_count == 0
    reader.close()
    board.close()


def test_attach_from_another_process_sees_the_writes(tmp_path):
    path = str(tmp_path / "scoreboard")
    board = Scoreboard.create(2, 2, path)
    try:
        board.generation = 4
        board.process(1).spawned(31337, 4)
        w = board.worker(1, 0)
        w.thread_started(31337, 5, 4)
        w.begin_request(b"GET /x HTTP/1.1")
        w.end_request(2048)
        code = (
            "import json, sys\n"
            "from mpmserver.scoreboard import Scoreboard\n"
            "s = Scoreboard.attach(sys.argv[1]).snapshot()\n"
            "w = s.processes[1].workers[0]\n"
            "print(json.dumps([s.generation, s.master_pid, s.processes[1].pid, w.access_count,\n"
            "                  w.bytes_served, w.request, s.status_line()]))\n")
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                             timeout=20, cwd=os.path.dirname(os.path.dirname(sbm.__file__)))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [4, os.getpid(), 31337, 1, 2048, "GET /x HTTP/1.1", "..W."]
    finally:
        board.close()
    assert not os.path.exists(path)


def test_attached_view_is_read_only(tmp_path):
    path = str(tmp_path / "sb")
    board = Scoreboard.create(1, 1, path)
    reader = Scoreboard.attach(path)
    with pytest.raises(TypeError):
        reader.worker(0, 0).set_status(SERVER_READY)
    reader.close()
    assert os.path.exists(path)  # only the creator removes the file
    board.close()


def test_forked_child_closing_does_not_remove_the_file(tmp_path):
    path = str(tmp_path / "sb")
    board = Scoreboard.create(1, 1, path)
    pid = os.fork()
    if pid == 0:
        board.close()
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.path.exists(path)
    board.close()
    assert not os.path.exists(path)


def test_create_replaces_a_stale_file(tmp_path):
    path = tmp_path / "sb"
    path.write_bytes(b"junk")
    board = Scoreboard.create(1, 1, str(path))
    assert Scoreboard.attach(str(path)).server_limit == 1
    board.close()


def test_attach_missing_file_says_so(tmp_path):
    with pytest.raises(ScoreboardError, match="does not exist; is the server running"):
        Scoreboard.attach(str(tmp_path / "nope"))


def test_attach_not_a_scoreboard(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world, this is not a scoreboard at all" * 10)
    with pytest.raises(ScoreboardError, match="not an mpmserver scoreboard file"):
        Scoreboard.attach(str(path))
    (tmp_path / "tiny").write_bytes(b"MPM")
    with pytest.raises(ScoreboardError, match="not an mpmserver scoreboard file"):
        Scoreboard.attach(str(tmp_path / "tiny"))


def test_attach_wrong_layout_version(tmp_path):
    path = str(tmp_path / "sb")
    board = Scoreboard.create(1, 1, path)
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 99))
    with pytest.raises(ScoreboardError, match="layout version 99; this mpmserver reads version 3"):
        Scoreboard.attach(path)
    board.close()


def test_attach_truncated_file(tmp_path):
    path = str(tmp_path / "sb")
    board = Scoreboard.create(2, 2, path)
    with open(path, "rb") as f:
        head = f.read(100)
    board.close()
    with open(path, "wb") as f:
        f.write(head)
    with pytest.raises(ScoreboardError, match="truncated"):
        Scoreboard.attach(path)


def test_create_in_missing_directory_says_what_to_check(tmp_path):
    with pytest.raises(ScoreboardError, match="check the directory exists"):
        Scoreboard.create(1, 1, str(tmp_path / "no" / "such" / "sb"))


def test_draining_is_a_byte_of_the_master_sub_record(tmp_path):
    # GracefulStopDrain's flag lives at offset 25 of the process record.
    path = str(tmp_path / "sb")
    board = Scoreboard.create(2, 1, path)
    try:
        rec = board.process(1)
        rec.spawned(777, 0)
        assert rec.going_away() is None and not board.snapshot().processes[1].draining
        rec.set_draining(True)
        with open(path, "rb") as f:
            raw = f.read()
        proc = 64 + 128 + sbm.PROCESS_SIZE
        assert raw[proc + 24:proc + 26] == b"\0\1"
        assert rec.going_away() == "draining" and board.snapshot().processes[1].draining
        rec.set_quiescing(True)  # keeps the drain flag; stopping wins
        assert rec.going_away() == "stopping" and board.snapshot().processes[1].draining
        rec.clear()
        assert rec.going_away() is None
        board.process(0).spawned(778, 0, draining=True)  # a child forked during the drain
        assert board.process(0).going_away() == "draining"
    finally:
        board.close()


def test_writing_count_is_two_bytes_published_at_most_65535(sb):
    """ConnsAsyncWriting's count is a two-byte field: a count past its range
    is published as its maximum, and the fields around it are unharmed."""
    me = os.getpid()
    proc = sb.process(0)
    proc.spawned(me, 0)
    proc.set_connections(70000, 2, 1, 70000)
    proc.set_not_accepting(True)
    p = sb.snapshot().processes[0]
    assert (p.connections, p.keep_alive, p.lingering_close, p.not_accepting, p.writing) == (
        70000, 2, 1, True, 0xFFFF)


def test_recycle_cause_first_limit_wins_survives_the_listener_and_is_cleared_at_reap(sb):
    me = os.getpid()
    proc = sb.process(2)
    proc.spawned(me, 0)
    proc.set_connections(3, 1)
    assert sb.snapshot().processes[2].recycle_cause == 0
    proc.set_recycle_cause(sbm.RECYCLE_REQUESTS)  # a worker thread, at MaxRequestsPerChild
    proc.set_recycle_cause(sbm.RECYCLE_MEMORY)  # then the main thread: the first cause stays
    proc.set_connections(2, 0, 1, 1)  # the listener's seqlocked writes leave the byte alone
    proc.set_not_accepting(True)
    p = sb.snapshot().processes[2]
    assert p.recycle_cause == sbm.RECYCLE_REQUESTS
    assert (p.connections, p.keep_alive, p.lingering_close, p.writing, p.not_accepting) == (2, 0, 1, 1, True)
    proc.clear()  # the master reaped it: the successor starts without a cause
    proc.spawned(me + 1, 0)
    assert sb.snapshot().processes[2].recycle_cause == 0


def test_master_counters_count_and_outlive_a_reset(sb):
    assert sb.snapshot().counters == sbm.MasterCounters()
    for _ in range(3):
        sb.count_spawn()
    sb.count_restart(graceful=False)
    sb.count_exit("request_timeout")
    sb.count_exit("crash")
    sb.count_exit("crash")
    sb.reset()
    c = sb.snapshot().counters
    assert (c.spawns, c.graceful_restarts, c.hup_restarts) == (3, 0, 1)
    assert c.exits_by_cause() == {"connections": 0, "requests": 0, "memory": 0, "request_timeout": 1,
                                  "crash": 2}
    with pytest.raises(ValueError):
        sb.count_exit("bored")


def test_duration_buckets_are_slot_counters(sb):
    """Kept when a new thread (or child) takes the slot, zeroed by reset,
    and always summing to access_count."""
    w = sb.worker(0, 1)
    w.thread_started(1, 1, 0)
    durations = (0.004, 0.006, 0.2, 0.2, 11.0)
    for d in durations:
        w.begin_request(b"GET / HTTP/1.1", _now=lambda: 500.0)
        w.end_request(1, _now=lambda d=d: 500.0 + d)
    # A successor child's thread in the same slot: a record object of its
    # own (a forked child builds its own), loaded from the map.
    w2 = sbm.WorkerRecord(sb._mm, w._off, sb._codes_row(0, 1))
    w2.thread_started(2, 1, 0)
    w2.begin_request(b"GET / HTTP/1.1", _now=lambda: 500.0)
    w2.end_request(1, _now=lambda: 500.001)
    ws = sb.snapshot().processes[0].workers[1]
    bounds = sbm.DURATION_BUCKETS
    expected = [0] * (len(bounds) + 1)
    for d in durations + (0.001,):
        expected[next((i for i, b in enumerate(bounds) if d <= b), len(bounds))] += 1
    assert ws.duration_buckets == tuple(expected)
    assert sum(ws.duration_buckets) == ws.access_count == 6
    assert sb.snapshot().processes[0].duration_buckets == tuple(expected)
    sb.reset()
    assert sum(sb.snapshot().processes[0].duration_buckets) == 0


def test_responses_by_code_sum_every_writer_of_every_slot_and_survive_a_new_child(sb):
    w = sb.worker(0, 0)
    w.thread_started(100, 1, 0)
    w.begin_request(b"GET / HTTP/1.1")
    w.end_request(10, 200)
    w.end_request(10, 299)  # a code without a cell of its own
    w.end_request(0, 0)  # no response from the worker: not counted
    sb.worker(1, 1).end_request(10, 200)
    sb.process(1).response_codes[sbm.response_cell(408)] += 1  # the listener's own 408
    sb.process(0).clear()
    w = sb.worker(0, 0)
    w.thread_started(101, 1, 0)  # a successor in slot 0 keeps adding to the slot's counts
    w.end_request(10, 500)
    assert not any(sb.snapshot().responses_by_code().values())  # read only when asked for
    codes = sb.snapshot(responses=True).responses_by_code()
    assert list(codes)[-1] == "other" and len(codes) == len(sbm.RESPONSE_CODES) + 1
    assert {k: v for k, v in codes.items() if v} == {"200": 2, "408": 1, "500": 1, "other": 1}
    sb.reset()
    assert not any(sb.snapshot(responses=True).responses_by_code().values())


def test_a_live_childs_published_rss_is_seen_and_a_reaped_ones_is_not(sb):
    rec = sb.process(1)
    rec.spawned(os.getpid(), 0)
    rec.set_connections(0, 0)  # the child's first write: its pid in the child sub-record
    rec.publish_rss(30 << 20)
    snap = sb.snapshot()
    assert snap.processes[1].rss == 30 << 20 and snap.resident_bytes == 30 << 20
    rec.clear()
    assert sb.snapshot().processes[1].rss == 0
