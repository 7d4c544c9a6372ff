"""No slow client of any size holds a thread (issue 25 item 2): request
bodies past RequestBodyBuffer are spooled by the listener's loop to
temporary files (RequestBodySpool), responses a client reads slower than
the app writes are queued by the loop (ResponseSpool), both bounded per
child (SpoolLimitPerChild: 503, RequestBodySpool: 413).

A real server (2 children x 4 threads for the main scenario), real HTTP
from client threads; the app is tests/apps/spool_app.py. The full-size
scenario of the issue (50 x 1 MB uploads and 50 x 8 MB downloads at 1 KB/s)
is benchmarks/slow_clients.py; this one is scaled to run in ~10-20 s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time

import pytest

from tests.apps.spool_app import pattern
from tests.support.client import parse
from tests.support.server import read_response, wait_for
from tests.support.timing import timing

APP = "tests.apps.spool_app:app"
UPLOADERS = 20
UPLOAD = 1 << 20
DOWNLOADERS = 20
DOWNLOAD = 8 << 20
SECONDS = 8.0  # each slow client takes about this long
PROBE_DEADLINE = 5.0  # generous: without spooling a probe waits for a slow client to end (SECONDS)


@pytest.fixture
def spool_dir():
    """A directory the children may write (they run as nobody when the tests run as root)."""
    path = tempfile.mkdtemp(prefix="mpm-spool-")
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def spool_fds(server, directory: str) -> list[str]:
    """The children's open descriptors of files in ``directory`` (spools)."""
    found = []
    for pid in server.children():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(directory):
                found.append(target)
    return found


def connect(port: int, rcvbuf: int = 0) -> socket.socket:
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.settimeout(30)
    c.connect(("127.0.0.1", port))
    return c


def read_until_closed(c: socket.socket) -> bytes:
    chunks = []
    while data := c.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def upload(port: int, index: int, results: dict, abort: bool = False) -> None:
    """A slow POST of UPLOAD bytes in pieces over SECONDS; the app answers its SHA-256."""
    body = hashlib.sha256(b"%d" % index).digest() * (UPLOAD // 32)
    pieces = 64
    step = UPLOAD // pieces
    with connect(port) as c:
        c.sendall(b"POST /upload/%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % (index, UPLOAD))
        for i in range(pieces):
            if abort and i == pieces // 2:
                results[index] = "aborted"
                return
            c.sendall(body[i * step:(i + 1) * step])
            time.sleep(SECONDS / pieces)
        status, _, answer = parse(read_until_closed(c))
    results[index] = (status, answer, f"{hashlib.sha256(body).hexdigest()} {UPLOAD} {UPLOAD}".encode())


def download(port: int, index: int, results: dict, abort: bool = False) -> None:
    """A slow GET of DOWNLOAD bytes (one piece, or 64 KiB pieces), read at
    DOWNLOAD/SECONDS bytes a second through a small receive buffer."""
    gen = b"&gen" if index % 2 else b""
    with connect(port, rcvbuf=4096) as c:
        c.sendall(b"GET /download?%d%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % (DOWNLOAD, gen))
        got = bytearray()
        ticks = 80
        per_tick = DOWNLOAD // ticks
        while True:
            want = len(got) + per_tick
            while len(got) < want:
                data = c.recv(want - len(got))
                if not data:
                    break
                got += data
            else:
                if abort and len(got) > DOWNLOAD // 2:
                    results[index] = "aborted"
                    return
                time.sleep(SECONDS / ticks)
                continue
            break
    status, headers, body = parse(bytes(got))
    results[index] = (status, len(body), hashlib.sha256(body).hexdigest())


def probe(port: int) -> float:
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_DEADLINE) as c:
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, _, body, _ = read_response(c)
    assert (status, body) == (200, b"hello")
    return time.monotonic() - t0


def test_slow_uploads_and_slow_downloads_hold_no_thread(server_factory, spool_dir, record_property):
    s = server_factory("--fixed-servers", "2", "--threads-per-child", "4", "--spool-directory", spool_dir,
                       "--max-request-workers", "8", app=APP).start()
    ups: dict = {}
    downs: dict = {}
    threads = [threading.Thread(target=upload, args=(s.port, i, ups, i == 0), daemon=True)
               for i in range(UPLOADERS)]
    threads += [threading.Thread(target=download, args=(s.port, i, downs, i == 0), daemon=True)
                for i in range(DOWNLOADERS)]
    for t in threads:
        t.start()
    probes = []
    try:
        # The spools are in use: bodies in files, responses queued (the
        # children hold unlinked files of the spool directory).
        wait_for(lambda: spool_fds(s, spool_dir), 10, 0.05, "the children to spool")
        while any(t.is_alive() for t in threads) and len(probes) < 200:
            probes.append(probe(s.port))  # raises past PROBE_DEADLINE
            time.sleep(0.1)
        # Answered while the slow clients were still there: not queued behind them.
        assert len(probes) >= 20, f"only {len(probes)} probes answered while the slow clients ran"
    finally:
        for t in threads:
            t.join(60)
    timing(record_property, "spooling: the slowest probe beside 40 slow clients", max(probes) * 1000, "ms", 1000)
    assert ups.pop(0) == "aborted" and downs.pop(0) == "aborted"
    assert len(ups) == UPLOADERS - 1 and len(downs) == DOWNLOADERS - 1
    for status, answer, expected in ups.values():
        assert (status, answer) == (200, expected)
    expected = (200, DOWNLOAD, hashlib.sha256(pattern(DOWNLOAD)).hexdigest())
    assert set(downs.values()) == {expected}
    # Every spool closed, the aborted ones too; nothing ever had a name.
    wait_for(lambda: not spool_fds(s, spool_dir), 10, 0.05, "every spool file to be closed")
    assert os.listdir(spool_dir) == []


@pytest.fixture
def one_child(server_factory, spool_dir):
    """1 child x 2 threads, small spool bounds, a streaming prefix."""
    return server_factory("--fixed-servers", "1", "--threads-per-child", "2", "--max-request-workers", "2",
                          "--spool-directory", spool_dir, "--spool-limit-per-child", "600K",
                          "--request-body-spool", "512K", "--request-body-spool-exclude", "/upload/stream/",
                          app=APP).start()


def send_head(port: int, path: bytes, length: int) -> socket.socket:
    c = connect(port)
    c.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (path, length))
    return c


def test_an_excluded_prefix_streams_the_body_to_the_app(one_child):
    """Under RequestBodySpoolExclude the app reads the body as it arrives:
    it answers while most of the body is still to come."""
    with send_head(one_child.port, b"/upload/stream/x?1000", 400_000) as c:
        c.sendall(b"s" * 100_000)
        status, _, body, _ = read_response(c)
    assert (status, body) == (200, b"streamed 1000")
    # Elsewhere the same body is spooled: the app runs once all of it is here.
    with send_head(one_child.port, b"/upload/x", 400_000) as c:
        c.sendall(b"s" * 100_000)
        c.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c.recv(1)  # no answer while the body is incomplete
        c.settimeout(10)
        c.sendall(b"s" * 300_000)
        status, _, body, _ = read_response(c)
    assert (status, body) == (200, f"{hashlib.sha256(b's' * 400_000).hexdigest()} 400000 400000".encode())


def test_a_chunked_body_is_decoded_into_the_spool_and_a_pipelined_request_follows(one_child):
    data = os.urandom(300_000)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 7000]), data[i:i + 7000])
                       for i in range(0, len(data), 7000)) + b"0\r\nX-Trailer: t\r\n\r\n"
    with connect(one_child.port) as c:
        c.sendall(b"POST /upload/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(chunked), 50_000):  # several reads of the loop
            c.sendall(chunked[i:i + 50_000])
            time.sleep(0.02)
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body, rest = read_response(c)
        assert (status, body) == (200, f"{hashlib.sha256(data).hexdigest()} 300000 300000".encode())
        assert read_response(c, rest)[::2] == (200, b"hello")


def test_the_bounds_answer_413_and_503_and_free_their_files(one_child, spool_dir):
    port = one_child.port
    # A chunked body that grows past RequestBodySpool (512K): 413.
    with connect(port) as c:
        c.sendall(b"POST /upload/big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(20):
                c.sendall(b"10000\r\n" + b"b" * 0x10000 + b"\r\n")
        except OSError:  # the server answered and closed while we sent
            pass
        assert read_response(c)[0] == 413
    # Two bodies the child cannot spool together (SpoolLimitPerChild 600K): 503 for the second.
    first = send_head(port, b"/upload/1", 400_000)
    with first:
        first.sendall(b"1" * 1000)
        wait_for(lambda: spool_fds(one_child, spool_dir), 5, 0.02, "the first body's spool")
        with send_head(port, b"/upload/2", 400_000) as second:
            status, headers, body, _ = read_response(second)
        assert status == 503 and b"cannot be held" in body
        # The operator hears of it.
        wait_for(lambda: "would pass SpoolLimitPerChild" in one_child.stderr, 5, 0.05, "the warning")
        first.sendall(b"1" * 399_000)
        status, _, body, _ = read_response(first)
        assert (status, body) == (200, f"{hashlib.sha256(b'1' * 400_000).hexdigest()} 400000 400000".encode())
    # Over RequestBodySpool with a Content-Length: streamed to the app, not refused.
    with send_head(port, b"/upload/3", 600_000) as c:
        c.sendall(b"3" * 600_000)
        assert read_response(c)[0] == 200
    wait_for(lambda: not spool_fds(one_child, spool_dir), 10, 0.05, "every spool file to be closed")


def test_a_client_gone_mid_upload_leaves_no_file(one_child, spool_dir):
    c = send_head(one_child.port, b"/upload/gone", 400_000)
    c.sendall(b"g" * 100_000)
    wait_for(lambda: spool_fds(one_child, spool_dir), 5, 0.02, "the body's spool")
    c.close()
    wait_for(lambda: not spool_fds(one_child, spool_dir), 5, 0.02, "the spool to be closed")
    assert os.listdir(spool_dir) == []


def test_a_slow_steady_reader_is_kept_while_the_worker_s_bytes_drain(server_factory, spool_dir):
    """RequestReadTimeout's body rate holds for a queued response from what
    the client reads after the hand-off: the megabytes the worker wrote
    into the kernel's send queue before it queued the rest count as the
    loop's, so a reader well above MinRate that takes longer than the body
    stage (2 s here) to drain them is not dropped as idle."""
    s = server_factory("--fixed-servers", "1", "--threads-per-child", "2", "--max-request-workers", "2",
                       "--spool-directory", spool_dir,
                       "--request-read-timeout", "header=20-40,MinRate=500 body=2,MinRate=500", app=APP).start()
    with connect(s.port, rcvbuf=4096) as c:
        c.sendall(b"GET /download?%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % DOWNLOAD)
        got = bytearray()
        slow_until = time.monotonic() + 5  # ~40 KB/s for 5 s: 80 times MinRate, far from draining the queue
        while time.monotonic() < slow_until:
            data = c.recv(4096)
            assert data, f"the server closed the connection after {len(got)} bytes"
            got += data
            time.sleep(0.1)
        got += read_until_closed(c)
    status, _, body = parse(bytes(got))
    assert status == 200 and hashlib.sha256(body).hexdigest() == hashlib.sha256(pattern(DOWNLOAD)).hexdigest()


def test_the_listener_answers_100_continue_and_spools_the_body(one_child, spool_dir):
    """A client that waits for "100 Continue" before a large body (curl
    does for uploads over 1 MB) gets it from the listener, which spools the
    body: two such slow uploads against two threads leave a probe answered
    (SpoolLimitPerChild 600K holds both)."""
    data = os.urandom(250_000)
    clients = []
    for i in range(2):
        c = connect(one_child.port)
        c.sendall(b"POST /upload/e%d HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % (i, len(data)))
        clients.append(c)
    try:
        for c in clients:
            status, _, _, rest = read_response(c)
            assert status == 100 and rest == b""
            c.sendall(data[:100_000])  # then the client is slow
        assert probe(one_child.port) < PROBE_DEADLINE
        for c in clients:
            c.sendall(data[100_000:])
            status, _, body, _ = read_response(c)
            assert (status, body) == (200, f"{hashlib.sha256(data).hexdigest()} 250000 250000".encode())
    finally:
        for c in clients:
            c.close()


def test_over_tls_a_spooled_upload_and_a_queued_download_are_intact(server_factory, spool_dir, tmp_path):
    """On an https port the spools go through the TLS socket: the body is
    read and decrypted by the loop, the queued response's file regions are
    read and encrypted (no sendfile there)."""
    trustme = pytest.importorskip("trustme", reason="trustme (the test extra) makes the certificates")
    import ssl

    from tests.support.server import free_port

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    leaf.private_key_pem.write_to_path(tmp_path / "key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    plain, https = free_port(), free_port()
    conf = tmp_path / "mpm.conf"
    conf.write_text("\n".join([
        f"Listen 127.0.0.1:{plain}", f"Listen 127.0.0.1:{https} https",
        f"SSLCertificateFile {tmp_path / 'cert.pem'}", f"SSLCertificateKeyFile {tmp_path / 'key.pem'}",
        "FixedServers 1", "ThreadsPerChild 2", "MaxRequestWorkers 2", f"SpoolDirectory {spool_dir}",
        f"WSGIApp {APP}"]) + "\n")
    os.chmod(tmp_path, 0o755)
    for name in ("cert.pem", "key.pem"):
        os.chmod(tmp_path / name, 0o644)
    s = server_factory(app=None, config=str(conf), port=plain).start()
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    data = os.urandom(500_000)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", https), timeout=30),
                             server_hostname="127.0.0.1") as c:
        c.sendall(b"POST /upload/tls HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(data))
        for i in range(0, len(data), 100_000):
            c.sendall(data[i:i + 100_000])
            time.sleep(0.05)
        status, _, body, rest = read_response(c)
        assert (status, body) == (200, f"{hashlib.sha256(data).hexdigest()} 500000 500000".encode())
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", https))
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as c:
        c.sendall(b"GET /download?%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % DOWNLOAD)
        wait_for(lambda: spool_fds(s, spool_dir), 10, 0.05, "the response to be queued in a file")
        got = bytearray()
        while data := c.recv(65536):
            got += data
    status, _, body = parse(bytes(got))
    assert status == 200 and hashlib.sha256(body).hexdigest() == hashlib.sha256(pattern(DOWNLOAD)).hexdigest()

