"""A worker's request cycle against h11 on the client side, through a channel
that is not a socket (as waitress tests a Task against a channel)."""

import h11
import pytest

from mpmserver import config as configmod
from mpmserver.child.connection import Connection
from mpmserver.child.handoff import Handoff
from mpmserver.http.errors import BodyTooLarge, ClientDisconnected
from mpmserver.http.outcome import ABORT, CLOSE, FINISHED, KEEP, REFUSE
from mpmserver.http.request import ChildContext, RequestCycle
from mpmserver.http.wsgi import base_environ
from mpmserver.logs import ErrorLog, ErrorStream
from mpmserver.scoreboard import Scoreboard


class Channel:
    """What the client sends, in pieces; what the server wrote, collected."""

    def __init__(self, *incoming: bytes):
        self.incoming = list(incoming)
        self.out = bytearray()
        self.sent = 0
        self.tail = None  # write completion: never left, this channel takes everything
        self.tail_ok = False

    def recv(self, n):
        if not self.incoming:
            return b""  # the client closed
        item = self.incoming.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def recv_within(self, n, seconds):
        return self.recv(n)

    def send(self, data, flags=0):
        self.out += data
        self.sent += len(data)

    def sendfile(self, fd, offset, count, leave_tail=False):
        import os

        self.out += os.pread(fd, count, offset)


class FakeSock:
    def fileno(self):
        return 99


@pytest.fixture
def run():
    sb = Scoreboard.create(1, 1)
    handoffs = []

    def run(app, request: bytes, *more: bytes, stopping=False, **directives):
        cfg = configmod.from_kwargs(threads_per_child=1, **directives)
        log = ErrorLog(None, "crit")
        errors = []
        ctx = ChildContext(cfg, app, base_environ("localhost", 80, ErrorStream(log)), log,
                           on_app_error=errors.append)
        handoff = Handoff()
        handoff.stopping = stopping
        handoffs.append(handoff)
        cycle = RequestCycle(ctx, sb.worker(0, 0), handoff)
        h = h11.Connection(h11.SERVER)
        h.receive_data(request)
        channel = Channel(*more)
        outcome = cycle.run(Connection(FakeSock(), "192.0.2.7", 5555, 80), h, channel)
        run.rest = cycle.rest(h)  # what the worker starts the next request with
        run.unread = channel.incoming  # what the client sent that the cycle did not read
        refusal = cycle.refusal[0] if cycle.refusal else None  # (error, access record)
        return outcome, bytes(channel.out), refusal, errors
    yield run
    sb.close()


def client_reads(data: bytes, method="GET"):
    c = h11.Connection(h11.CLIENT)
    c.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    c.send(h11.EndOfMessage())
    c.receive_data(data)
    resp = c.next_event()
    body = b""
    while True:
        ev = c.next_event()
        if type(ev) is h11.Data:
            body += ev.data
        else:
            break
    return resp, body


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Remote", environ["REMOTE_ADDR"])])
    return [b"hello ", b"world"]


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def test_a_get_is_answered_and_the_connection_kept(run):
    outcome, out, _, errors = run(hello, GET)
    assert outcome == KEEP and not errors
    resp, body = client_reads(out)
    assert resp.status_code == 200 and body == b"hello world"
    assert dict(resp.headers)[b"x-remote"] == b"192.0.2.7"
    assert dict(resp.headers)[b"transfer-encoding"] == b"chunked"


def test_connection_close_from_the_client_or_a_stopping_child(run):
    # The client asked: it sends nothing more, so no lingering drain is needed.
    outcome, out, _, _ = run(hello, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert outcome == FINISHED and dict(client_reads(out)[0].headers)[b"connection"] == b"close"
    outcome, out, _, _ = run(hello, GET, stopping=True)
    assert outcome == CLOSE and dict(client_reads(out)[0].headers)[b"connection"] == b"close"


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def test_a_body_arriving_in_pieces_reaches_the_app(run):
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
    outcome, out, _, _ = run(echo, head + b"abc", b"defg", b"hij")
    assert outcome == KEEP and client_reads(out, "POST")[1] == b"abcdefghij"


def reading_app(seen):
    """Reads the whole body; notes the class of what reading raised, and re-raises it."""
    def app(environ, start_response):
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            seen.append(type(exc))
            raise
    return app


def test_a_client_gone_mid_body_is_an_oserror_in_the_app_and_nothing_is_answered(run):
    seen = []
    app = reading_app(seen)
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"
    outcome, out, _, errors = run(app, head, ConnectionResetError())
    assert (outcome, out, errors, seen) == (ABORT, b"", [], [ClientDisconnected])


def test_a_stalled_body_is_body_too_slow_and_a_408_or_with_request_read_timeout_off_a_disconnect(run):
    from mpmserver.http.errors import BodyTooSlow

    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"
    seen = []
    outcome, out, refusal, errors = run(reading_app(seen), head, TimeoutError())
    assert (outcome, refusal.status, errors, seen) == (REFUSE, 408, [], [BodyTooSlow])
    seen.clear()
    outcome, out, _, errors = run(reading_app(seen), head, TimeoutError(), request_read_timeout="body=0")
    assert (outcome, seen) == (ABORT, [ClientDisconnected])


def test_a_chunked_body_over_the_limit_is_refused_with_413(run):
    seen = []
    app = reading_app(seen)
    chunks = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    outcome, out, refusal, errors = run(
        app, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks,
        limit_request_body=1000)
    assert (outcome, refusal.status, out, errors, seen) == (REFUSE, 413, b"", [], [BodyTooLarge])


def test_a_declared_body_over_the_limit_is_refused_before_the_app(run):
    called = []
    outcome, out, refusal, _ = run(lambda e, s: called.append(1),
                                   b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n",
                                   limit_request_body=1000)
    assert (outcome, refusal.status, called) == (REFUSE, 413, [])


def test_an_app_error_is_a_500_without_its_text_and_reaches_the_hook(run):
    def app(environ, start_response):
        raise RuntimeError("secret detail")
    outcome, out, refusal, errors = run(app, GET)
    assert outcome == REFUSE and refusal.status == 500
    assert "secret" not in refusal.reason
    assert [type(e) for e in errors] == [RuntimeError]


def test_an_app_error_after_the_head_went_out_aborts(run):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"partial"
        raise RuntimeError("late")
    outcome, out, _, errors = run(app, GET)
    assert outcome == ABORT and out.endswith(b"partial\r\n") and len(errors) == 1


def test_an_unread_body_is_drained_so_the_connection_is_kept(run):
    outcome, out, _, _ = run(hello, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", b"12345")
    assert outcome == KEEP and client_reads(out, "POST")[0].status_code == 200


NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.mark.parametrize("pieces", [
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabcdefghij" + NEXT,),  # all at once
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", b"defghij" + NEXT[:7], NEXT[7:]),
])
def test_the_next_request_starts_right_after_a_content_length_body(run, pieces):
    outcome, out, _, _ = run(echo, *pieces)
    assert outcome == KEEP and client_reads(out, "POST")[1] == b"abcdefghij"
    # What the cycle read past the body is the next request's start; the
    # rest of it is still with the client.
    assert run.rest + b"".join(run.unread) == NEXT


def test_an_unread_content_length_body_is_drained_up_to_the_next_request(run):
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"
    outcome, _, _, _ = run(hello, head, b"defg", b"hij" + NEXT)
    assert outcome == KEEP and run.rest == NEXT


def test_a_large_unread_body_closes_the_connection_without_reading_it(run):
    from mpmserver.http.request import DRAIN_LIMIT

    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\nabc" % (DRAIN_LIMIT + 1)
    outcome, out, _, _ = run(hello, head, b"x" * 65536)
    assert outcome == CLOSE and client_reads(out, "POST")[0].status_code == 200
    assert run.unread == [b"x" * 65536]  # closing is cheaper than reading it


def test_a_body_cut_short_by_the_clients_close_is_refused_with_400(run):
    from mpmserver.http.errors import MalformedBody

    seen = []
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"
    outcome, out, refusal, errors = run(reading_app(seen), head, b"def")  # then the client closes
    assert (outcome, refusal.status, out, errors, seen) == (REFUSE, 400, b"", [], [MalformedBody])
    assert "6 of 10 bytes" in str(refusal.detail)


def test_a_client_waiting_for_100_continue_gets_it_before_its_body_is_read(run):
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    outcome, out, _, _ = run(echo, head, b"hello" + NEXT)
    assert out.startswith(b"HTTP/1.1 100 ")
    assert outcome == KEEP and out.endswith(b"\r\n\r\nhello") and run.rest == NEXT


def test_a_malformed_request_is_refused_with_400(run):
    outcome, out, refusal, _ = run(hello, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: x\r\n\r\n")
    assert (outcome, refusal.status, out) == (REFUSE, 400, b"")


def test_a_partial_line_on_wsgi_errors_is_logged_when_its_request_ends(tmp_path):
    def app(environ, start_response):
        environ["wsgi.errors"].write("no newline at the end")
        start_response("200 OK", [("Content-Length", "0")])
        return []
    sb = Scoreboard.create(1, 1)
    log = ErrorLog(str(tmp_path / "error.log"), "error")
    cfg = configmod.from_kwargs(threads_per_child=1)
    ctx = ChildContext(cfg, app, base_environ("localhost", 80, ErrorStream(log)), log)
    h = h11.Connection(h11.SERVER)
    h.receive_data(GET)
    assert RequestCycle(ctx, sb.worker(0, 0), Handoff()).run(
        Connection(FakeSock(), "192.0.2.7", 5555, 80), h, Channel()) == KEEP
    log.close()
    sb.close()
    assert "no newline at the end" in (tmp_path / "error.log").read_text()


def test_header_lists_seen_before_are_checked_and_encoded_alike(run):
    # encode_headers and parse_status remember what they accepted, by value:
    # the second response is the same, and a bad list is refused every time.
    def app(environ, start_response):
        start_response(environ["PATH_INFO"][1:].replace("_", " "), [("Content-Length", "2"), ("X-A", "b")])
        return [b"ok"]
    for _ in range(2):
        outcome, out, _, _ = run(app, b"GET /201_Made HTTP/1.1\r\nHost: a\r\n\r\n")
        resp, body = client_reads(out)
        assert outcome == KEEP and (resp.status_code, resp.reason, body) == (201, b"Made", b"ok")
        assert dict(resp.headers)[b"x-a"] == b"b"

    def bad(environ, start_response):
        start_response("200 OK", [("X-A", "b\r\nX-Injected: 1")])
        return [b"ok"]
    for _ in range(2):
        outcome, _, refusal, errors = run(bad, GET)
        assert outcome == REFUSE and refusal.status == 500 and [type(e) for e in errors] == [ValueError]
    outcome, _, refusal, _ = run(lambda e, s: (s("2x0 OK", []), [b""])[1], GET)
    assert outcome == REFUSE and refusal.status == 500


def test_a_file_response_leaves_the_apps_encoded_headers_as_they_were(run, tmp_path):
    # send_file adds Content-Length to its own list, not to the one
    # encode_headers shares with every response of the same headers.
    from mpmserver.http.wsgi import encode_headers

    path = tmp_path / "f"
    path.write_bytes(b"file body")
    headers = [("Content-Type", "text/x-test-file")]

    def app(environ, start_response):
        start_response("200 OK", list(headers))
        return environ["wsgi.file_wrapper"](open(path, "rb"))
    for _ in range(2):
        outcome, out, _, _ = run(app, GET)
        resp, body = client_reads(out)
        assert body == b"file body" and dict(resp.headers)[b"content-length"] == b"9"
    assert encode_headers(list(headers))[0] == [(b"content-type", b"text/x-test-file")]
