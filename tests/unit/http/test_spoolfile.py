"""The spools' files (http/spoolfile.py) and the worker's Channel queueing
behind a full socket (response.Channel with a Spooler): real files in a
test directory, a socketpair for the client."""

from __future__ import annotations

import os
import socket
import tempfile
import threading

import pytest

from mpmserver.http.response import Channel
from mpmserver.http.spool import SpoolBudget, SpoolLimits
from mpmserver.http.spoolfile import BodySpool, OutQueue, Spooler

K = 1024


def spooler(directory, response_spool=4 << 20, memory=64 * K, per_child=0) -> Spooler:
    return Spooler(SpoolLimits(limit_body=0, body_buffer=64 * K, body_spool=1 << 30, exclude=(),
                               response_spool=response_spool, response_memory=memory, per_child=per_child,
                               directory=str(directory)))


def open_fds_in(directory) -> list[str]:
    """This process's descriptors of files made in ``directory`` (unlinked ones show as "(deleted)")."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def read_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        data = sock.recv(min(1 << 20, n - len(got)))
        assert data, "the writer closed early"
        got += data
    return bytes(got)


def test_a_body_spool_is_an_unlinked_file_read_back_whole(tmp_path):
    budget = SpoolBudget(10 << 20, 0)
    spool = BodySpool(str(tmp_path), budget)
    assert os.listdir(tmp_path) == []  # unlinked from the start
    data = os.urandom(300 * K)
    assert spool.reserve(len(data))
    spool.write(data[:1000])
    spool.write(memoryview(data)[1000:])
    spool.rest = b"GET / HTTP/1.1\r\n"
    out = b"".join(iter(lambda: spool.read(65536), b""))
    assert out == data and budget.disk == len(data)
    spool.close()
    spool.close()  # twice: harmless
    assert budget.disk == 0 and open_fds_in(tmp_path) == []


def test_a_body_spool_past_the_child_s_bound_is_refused(tmp_path):
    budget = SpoolBudget(100, 0)
    spool = BodySpool(str(tmp_path), budget)
    assert spool.reserve(60) and not spool.reserve(41) and spool.reserve(40)
    spool.close()
    assert budget.disk == 0


def test_a_queue_holds_memory_then_a_file_then_the_app_s_file_in_order(tmp_path):
    sp = spooler(tmp_path, memory=100 * K)
    queue = sp.queue()
    pieces = [os.urandom(60 * K), os.urandom(60 * K), os.urandom(200 * K), os.urandom(10)]
    for p in pieces:
        assert queue.append(p)
    # The second and third pieces no longer fit in memory; the last does (the items keep their order).
    assert queue.memory == 60 * K + 10 and queue.disk == 260 * K
    app_file = tempfile.TemporaryFile(dir=tmp_path)
    app_file.write(b"F" * 100_000)
    app_file.flush()
    queue.append_file(os.dup(app_file.fileno()), 10, 99_990)
    app_file.close()
    expected = b"".join(pieces) + b"F" * 99_990
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        got = bytearray()
        while not queue.empty:
            queue.send_to(a)
            got += b.recv(1 << 20)
        a.close()
        while data := b.recv(1 << 20):
            got += data
    assert bytes(got) == expected
    queue.close()
    assert (sp.budget.disk, sp.budget.memory) == (0, 0) and open_fds_in(tmp_path) == []


def test_a_queue_says_no_past_response_spool_and_past_the_child_s_files(tmp_path):
    queue = spooler(tmp_path, response_spool=100 * K, memory=0).queue()
    assert queue.append(b"x" * 100 * K) and not queue.append(b"x")
    queue.close()
    sp = spooler(tmp_path, memory=0, per_child=50 * K)
    first, second = sp.queue(), sp.queue()
    assert first.append(b"x" * 40 * K) and not second.append(b"x" * 20 * K)
    assert sp.budget.refused == 1
    first.close()
    assert second.append(b"x" * 20 * K)
    second.close()
    assert sp.budget.disk == 0


def test_a_closed_queue_closes_the_app_s_file_and_its_own(tmp_path):
    sp = spooler(tmp_path, memory=0)
    queue = sp.queue()
    queue.append(b"y" * 1000)  # into a file
    fd = os.open(tmp_path, os.O_TMPFILE | os.O_RDWR)
    queue.append_file(fd, 0, 10)
    queue.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert open_fds_in(tmp_path) == []


def test_the_channel_queues_what_the_socket_cannot_take_and_never_waits(tmp_path):
    """A worker's Channel with a spooler: a send the socket cannot take
    whole leaves the rest queued at once (no wait: a timeout of 0.2 s would
    raise), and what the response sends next goes behind it."""
    sp = spooler(tmp_path, memory=64 * K)
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        ch = Channel(a, 0.2, sp)
        first = os.urandom(2 << 20)  # more than a socketpair holds
        ch.send(first)
        assert ch.tail is not None and not ch.tail.empty
        second = os.urandom(K)
        ch.send(second)
        fd, offset, count = _file_of(tmp_path, b"Z" * 5000)
        ch.sendfile(fd, offset, count, leave_tail=True)  # queued behind: a duplicate of fd
        os.close(fd)
        assert ch.sent == len(first) + len(second) + 5000
        expected = first + second + b"Z" * 5000
        reader = threading.Thread(target=lambda: got.append(read_exactly(b, len(expected))))
        got: list[bytes] = []
        reader.start()
        tail = ch.tail
        while not tail.empty:
            tail.send_to(a)  # what the loop does (completion.py)
        reader.join(10)
        tail.close()
    assert got == [expected]
    assert (sp.budget.disk, sp.budget.memory) == (0, 0)


def test_past_response_spool_the_channel_writes_what_waits_itself(tmp_path):
    """Over ResponseSpool the worker writes the queue and the rest itself,
    waiting for the client (here a reader thread), in order."""
    sp = spooler(tmp_path, response_spool=3 << 20, memory=0)
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        ch = Channel(a, 5.0, sp)
        data = [os.urandom(2 << 20)] + [os.urandom(200 * K) for _ in range(10)]
        expected = b"".join(data)
        got: list[bytes] = []
        ch.send(data[0])
        assert ch.tail is not None
        reader = threading.Thread(target=lambda: got.append(read_exactly(b, len(expected))))
        reader.start()
        for piece in data[1:]:
            ch.send(piece)
            assert ch.tail is None or ch.tail.size <= 3 << 20  # never more queued than ResponseSpool
        if ch.tail is not None:  # what the last pieces queued anew behind a full socket
            while not ch.tail.empty:
                ch.tail.send_to(a)
            ch.tail.close()
        reader.join(10)
    assert got == [expected]
    assert sp.budget.disk == 0


def _file_of(directory, content: bytes) -> tuple[int, int, int]:
    fd = os.open(directory, os.O_TMPFILE | os.O_RDWR)
    os.write(fd, content)
    return fd, 0, len(content)


def test_a_streaming_response_flows_again_once_the_client_took_what_waited(tmp_path):
    """A response that stalled once (a queue) is not held back until the app
    ends: each later write first sends what the client has room for, and
    once the queue is empty the socket is written directly again."""
    sp = spooler(tmp_path)
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        ch = Channel(a, 0.2, sp)
        first = os.urandom(2 << 20)
        ch.send(first)
        assert ch.tail is not None
        event = b"data: tick\n\n"
        got = bytearray()
        events = 0
        while ch.tail is not None and events < 1000:
            got += drain(b)  # the client reads what reached it
            ch.send(event)  # the app's next event
            events += 1
        assert ch.tail is None and events < 1000  # flowing directly again
        got += drain(b)
        assert bytes(got) == first + event * events
    assert (sp.budget.disk, sp.budget.memory) == (0, 0)


def drain(sock: socket.socket) -> bytes:
    got = bytearray()
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return bytes(got)
        got += data
