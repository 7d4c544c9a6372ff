"""Error log, access log formatting and the cached Date header."""

from __future__ import annotations

import os
import re
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpmserver import logs
from mpmserver.logs import (
    COMBINED,
    COMMON,
    LEVELS,
    AccessLog,
    AccessRecord,
    ErrorLog,
    ErrorStream,
    compile_format,
    escape_logitem,
)

# 2026-11-23 15:16:53.250 UTC, a Monday.
T0 = 1795447013.25

ERROR_LINE = re.compile(
    r"^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d\d \d\d:\d\d:\d\d\.\d{6} \d{4}\] \[(\w+)\] \[pid (\d+)(?::tid (\d+))?\] (.*)$")


@pytest.fixture
def tz():
    """Set the process time zone for one test (POSIX TZ strings, no tzdata needed)."""
    old = os.environ.get("TZ")

    def set_tz(value: str) -> None:
        os.environ["TZ"] = value
        time.tzset()

    set_tz("UTC0")
    yield set_tz
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def record(**kw) -> AccessRecord:
    base = dict(
        remote_addr="192.0.2.7", remote_port=51234, local_port=8080,
        method=b"GET", target=b"/shop/cart?item=42&q=a%20b", protocol="HTTP/1.1",
        request_line="GET /shop/cart?item=42&q=a%20b HTTP/1.1", status=200,
        bytes_sent=1234,
        request_headers=[(b"host", b"example.com"), (b"user-agent", b"curl/8.5.0"),
                         (b"referer", b"http://example.com/start"), (b"accept", b"*/*")],
        response_headers=[(b"content-type", b"text/html; charset=utf-8"),
                          (b"content-length", b"1234")],
        start_time=T0, duration=0.0123456, remote_user=None)
    base.update(kw)
    return AccessRecord(**base)


def read_lines(path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


# --------------------------------------------------------------------------
# LogFormat directives

@pytest.mark.parametrize("fmt, expected", [
    ("%h", "192.0.2.7"),
    ("%a", "192.0.2.7"),
    ("%l", "-"),
    ("%u", "-"),
    ("%t", "[23/Nov/2026:15:16:53 +0000]"),
    ("%r", "GET /shop/cart?item=42&q=a%20b HTTP/1.1"),
    ("%>s", "200"),
    ("%s", "200"),
    ("%<s", "200"),
    ("%b", "1234"),
    ("%B", "1234"),
    ("%D", "12346"),
    ("%T", "0"),
    ("%{ms}T", "12"),
    ("%{us}T", "12346"),
    ("%{s}T", "0"),
    ("%{User-Agent}i", "curl/8.5.0"),
    ("%{REFERER}i", "http://example.com/start"),
    ("%{X-Missing}i", "-"),
    ("%{Content-Type}o", "text/html; charset=utf-8"),
    ("%{X-Missing}o", "-"),
    ("%m", "GET"),
    ("%U", "/shop/cart"),
    ("%q", "?item=42&q=a%20b"),
    ("%H", "HTTP/1.1"),
    ("%p", "8080"),
    ("%{local}p", "8080"),
    ("%{canonical}p", "8080"),
    ("%{remote}p", "51234"),
    ("%{%Y-%m-%d %H:%M:%S}t", "2026-11-23 15:16:53"),
    ("%{end:%H:%M:%S}t", "15:16:53"),
    ("%{sec}t", "1795447013"),
    ("%{msec}t", "1795447013250"),
    ("%{msec_frac}t", "250"),
    ("%{usec_frac}t", "250000"),
    ("%{}t", "[23/Nov/2026:15:16:53 +0000]"),
    ("%%", "%"),
    ("100%% plain", "100% plain"),
])
def test_each_directive(tz, fmt, expected):
    assert compile_format(fmt)(record()) == expected


def test_pid_directives_name_the_calling_process_and_thread(tz):
    fn = compile_format("%P %{pid}P %{tid}P %{hextid}P")
    pid, pid2, tid, hextid = fn(record()).split()
    assert int(pid) == int(pid2) == os.getpid()
    assert int(tid) == threading.get_ident()
    assert int(hextid, 16) == threading.get_ident()


def test_common_and_combined_lines(tz):
    rec = record(remote_user="alice")
    assert compile_format(COMMON)(rec) == (
        '192.0.2.7 - alice [23/Nov/2026:15:16:53 +0000] '
        '"GET /shop/cart?item=42&q=a%20b HTTP/1.1" 200 1234')
    assert compile_format(COMBINED)(rec) == (
        '192.0.2.7 - alice [23/Nov/2026:15:16:53 +0000] '
        '"GET /shop/cart?item=42&q=a%20b HTTP/1.1" 200 1234 '
        '"http://example.com/start" "curl/8.5.0"')


def test_zero_bytes_is_dash_for_b_but_zero_for_B(tz):
    fn = compile_format("%b %B")
    assert fn(record(bytes_sent=0, status=304)) == "- 0"


def test_no_query_string_gives_empty_q(tz):
    fn = compile_format("[%U][%q]")
    assert fn(record(target=b"/plain")) == "[/plain][]"


def test_clf_time_shows_local_offset(tz):
    tz("XST-5:30")  # UTC+05:30
    assert compile_format("%t")(record()) == "[23/Nov/2026:20:46:53 +0530]"
    tz("XST+3")  # UTC-03:00
    assert compile_format("%t")(record()) == "[23/Nov/2026:12:16:53 -0300]"


def test_clf_time_follows_the_record_second(tz):
    fn = compile_format("%t")
    assert fn(record(start_time=T0)) == "[23/Nov/2026:15:16:53 +0000]"
    assert fn(record(start_time=T0 + 0.5)) == "[23/Nov/2026:15:16:53 +0000]"
    assert fn(record(start_time=T0 + 1)) == "[23/Nov/2026:15:16:54 +0000]"
    assert fn(record(start_time=T0)) == "[23/Nov/2026:15:16:53 +0000]"


def test_clf_time_is_formatted_once_per_second(tz, monkeypatch):
    fn = compile_format("%t")
    calls = []
    real = time.localtime
    monkeypatch.setattr(time, "localtime", lambda *a: calls.append(a) or real(*a))
    lines = {fn(record(start_time=T0 + i / 400)) for i in range(100)}  # all in one second
    assert lines == {"[23/Nov/2026:15:16:53 +0000]"}
    assert len(calls) == 1


def test_durations_truncate_like_apache(tz):
    fn = compile_format("%T %{ms}T %D")
    assert fn(record(duration=2.9996)) == "2 2999 2999600"


def test_end_time_adds_duration(tz):
    fn = compile_format("%{begin:%S}t %{end:%S}t")
    assert fn(record(start_time=T0, duration=2.0)) == "53 55"


def test_repeated_headers_are_joined(tz):
    rec = record(response_headers=[(b"set-cookie", b"a=1"), (b"vary", b"x"),
                                   (b"set-cookie", b"b=2")])
    assert compile_format("%{Set-Cookie}o")(rec) == "a=1, b=2"


def test_status_conditions(tz):
    fn = compile_format("%400,501{User-Agent}i|%!200,304{Referer}i")
    assert fn(record(status=200)) == "-|-"
    assert fn(record(status=400)) == "curl/8.5.0|http://example.com/start"
    assert fn(record(status=304)) == "-|-"
    assert fn(record(status=404)) == "-|http://example.com/start"


def test_literal_text_survives_compilation(tz):
    fmt = 'a{b}c "q" \' \\ \\n tab\there é € {%h} %%{x}'
    assert compile_format(fmt)(record()) == 'a{b}c "q" \' \\ \\n tab\there é € {192.0.2.7} %{x}'


@given(st.text(max_size=60))
def test_any_literal_text_is_reproduced_exactly(text):
    # The format becomes generated Python source; no text may escape its string literal.
    assert compile_format(text.replace("%", "%%"))(record()) == text


def test_format_is_compiled_once_not_parsed_per_request(tz, monkeypatch):
    fn = compile_format(COMBINED)

    def parse_again(*_a, **_k):
        raise AssertionError("format parsed per request")

    monkeypatch.setattr(logs, "_parse", parse_again)
    assert fn(record()).startswith("192.0.2.7 ")


# --------------------------------------------------------------------------
# Escaping

def test_request_line_injection_is_escaped(tz):
    evil = 'GET /x\n127.0.0.1 - - [fake] "GET /admin" 200 HTTP/1.1'
    line = compile_format('"%r"')(record(request_line=evil))
    assert "\n" not in line
    assert line == '"GET /x\\n127.0.0.1 - - [fake] \\"GET /admin\\" 200 HTTP/1.1"'


@pytest.mark.parametrize("raw, escaped", [
    ("plain text", "plain text"),
    ('say "hi"', 'say \\"hi\\"'),
    ("back\\slash", "back\\\\slash"),
    ("\b\n\r\t\v", "\\b\\n\\r\\t\\v"),
    ("\x00\x01\x1b\x7f", "\\x00\\x01\\x1b\\x7f"),
    ("caf\xe9", "caf\\xe9"),  # latin-1 decoded wire byte 0xe9
    ("\u20ac", "\\xe2\\x82\\xac"),  # wider than latin-1: its UTF-8 bytes
    (b"caf\xc3\xa9 \"x\"", 'caf\\xc3\\xa9 \\"x\\"'),
    ("\udce9", "\\xe9"),  # surrogateescape'd byte
])
def test_escape_logitem(raw, escaped):
    assert escape_logitem(raw) == escaped


_UNESCAPE = re.compile(r'\\(x[0-9a-f]{2}|[bnrtv"\\])')
_C_ESCAPES = {"b": 8, "n": 10, "r": 13, "t": 9, "v": 11, '"': 34, "\\": 92}


def unescape(text: str) -> bytes:
    def one(m):
        e = m.group(1)
        return chr(int(e[1:], 16) if e[0] == "x" else _C_ESCAPES[e])
    return _UNESCAPE.sub(one, text).encode("latin-1")


@given(st.binary(max_size=200))
def test_escaped_bytes_are_safe_and_reversible(raw):
    out = escape_logitem(raw)
    assert out.isascii() and out.isprintable()
    assert '"' not in out.replace('\\\\', "").replace('\\"', "")  # no bare quote
    assert unescape(out) == raw


def test_headers_user_method_and_path_are_escaped(tz):
    rec = record(
        request_headers=[(b"user-agent", b'x" "injected\\\x01\xff')],
        remote_user='bob"\n', method=b"G\x01T", target=b"/a\x00b?c=\"d\"")
    fn = compile_format("%{User-Agent}i|%u|%m|%U|%q")
    assert fn(rec) == 'x\\" \\"injected\\\\\\x01\\xff|bob\\"\\n|G\\x01T|/a\\x00b|?c=\\"d\\"'


# --------------------------------------------------------------------------
# Compile errors

@pytest.mark.parametrize("fmt, named", [
    ("%h %Z %b", "%Z"),
    ("%{X}Q", "%{X}Q"),
    ("%{bogus}p", "%{bogus}p"),
    ("%{bogus}T", "%{bogus}T"),
    ("%{bogus}P", "%{bogus}P"),
    ("%{}i", "%{}i"),
    ("%A", "%A"),
])
def test_unknown_directive_is_named(fmt, named):
    with pytest.raises(ValueError) as info:
        compile_format(fmt)
    assert f"directive {named} " in str(info.value)
    assert repr(fmt) in str(info.value)


@pytest.mark.parametrize("fmt, phrase", [
    ("%h %", "incomplete directive"),
    ("%{Referer", "unterminated"),
    ("%{Referer}", "incomplete directive"),
    ("%4!00{Referer}i", "bad status condition"),
])
def test_malformed_format_is_rejected(fmt, phrase):
    with pytest.raises(ValueError, match=phrase):
        compile_format(fmt)


# --------------------------------------------------------------------------
# Error log

def test_error_log_line_format(tmp_path):
    path = tmp_path / "error.log"
    log = ErrorLog(str(path), "warn")
    log.warn("disk nearly full")
    log.close()
    (line,) = read_lines(path)
    m = ERROR_LINE.match(line)
    assert m, line
    assert m.group(3) == "warn"
    assert int(m.group(4)) == os.getpid()
    assert int(m.group(5)) == threading.get_ident()
    assert m.group(6) == "disk nearly full"


def test_error_log_timestamp(tmp_path, tz, monkeypatch):
    monkeypatch.setattr(logs, "_now", lambda: T0)
    log = ErrorLog(str(tmp_path / "e.log"))
    log.show_tid = False
    log.error("x")
    log.close()
    assert read_lines(tmp_path / "e.log") == [
        f"[Mon Nov 23 15:16:53.250000 2026] [error] [pid {os.getpid()}] x"]


def test_level_filtering(tmp_path):
    path = tmp_path / "error.log"
    log = ErrorLog(str(path), "notice")
    log.emerg("m-emerg")
    log.alert("m-alert")
    log.crit("m-crit")
    log.error("m-error")
    log.warn("m-warn")
    log.notice("m-notice")
    log.info("m-info")
    log.debug("m-debug")
    log.log("trace3", "m-trace")
    log.log("notice", "m-log-notice")
    log.log("info", "m-log-info")
    log.close()
    got = [(ERROR_LINE.match(line).group(3), ERROR_LINE.match(line).group(6))
           for line in read_lines(path)]
    assert got == [("emerg", "m-emerg"), ("alert", "m-alert"), ("crit", "m-crit"),
                   ("error", "m-error"), ("warn", "m-warn"), ("notice", "m-notice"),
                   ("notice", "m-log-notice")]


def test_trace_levels_are_debug(tmp_path):
    assert all(LEVELS[f"trace{i}"] == LEVELS["debug"] for i in range(1, 9))
    log = ErrorLog(str(tmp_path / "e.log"), "trace8")
    assert log.enabled("debug") and log.enabled("trace1")
    log.close()


def test_enabled():
    log = ErrorLog(None, "warn")
    assert log.enabled("error") and log.enabled("warn")
    assert not log.enabled("notice") and not log.enabled("debug")


def test_unknown_level_is_an_error_listing_the_levels():
    with pytest.raises(ValueError, match=r"unknown log level 'loud'.*emerg.*debug"):
        ErrorLog(None, "loud")
    with pytest.raises(ValueError, match="'verbose'"):
        ErrorLog(None).log("verbose", "x")


def test_stderr_target(capfd):
    log = ErrorLog(None, "info")
    log.info("to stderr")
    out, err = capfd.readouterr()
    assert out == ""
    assert ERROR_LINE.match(err.rstrip("\n")).group(6) == "to stderr"
    assert log.fileno() == 2
    log.close()
    assert os.fstat(2)  # stderr is not ours to close


def test_unopenable_path_names_the_file(tmp_path):
    missing = tmp_path / "no-such-dir" / "error.log"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        ErrorLog(str(missing))


@pytest.mark.parametrize("target", ["|/usr/bin/rotatelogs /var/log/x 86400", "syslog:local7"])
def test_piped_and_syslog_targets_are_refused_clearly(target, tmp_path):
    with pytest.raises(ValueError, match="not supported"):
        ErrorLog(target)
    with pytest.raises(ValueError, match="not supported"):
        AccessLog(target, COMMON)


def test_file_is_created_and_appended(tmp_path):
    path = tmp_path / "error.log"
    path.write_text("old line\n")
    log = ErrorLog(str(path))
    log.error("new line")
    log.close()
    lines = read_lines(path)
    assert lines[0] == "old line" and lines[1].endswith("] new line")


def test_reopen_after_rotation_keeps_the_descriptor(tmp_path):
    path = tmp_path / "error.log"
    log = ErrorLog(str(path))
    fd = log.fileno()
    log.error("before")
    os.rename(path, tmp_path / "error.log.1")
    log.reopen()
    log.error("after")
    assert log.fileno() == fd
    log.close()
    assert read_lines(tmp_path / "error.log.1")[0].endswith("] before")
    assert read_lines(path)[0].endswith("] after")


def test_messages_after_close_are_dropped(tmp_path):
    log = ErrorLog(str(tmp_path / "e.log"))
    log.close()
    log.error("late")  # must not raise
    assert read_lines(tmp_path / "e.log") == []


def _assert_intact(lines, expected_count, width):
    assert len(lines) == expected_count
    for line in lines:
        m = ERROR_LINE.match(line)
        assert m, line[:120]
        who, body = m.group(6).split(" ", 1)
        assert body == who[-1] * width, f"line from {who} was corrupted"


def test_many_threads_never_interleave(tmp_path):
    path = tmp_path / "error.log"
    log = ErrorLog(str(path), "info")
    width, per_thread, n_threads = 3000, 150, 8

    def writer(n: int) -> None:
        for i in range(per_thread):
            log.info(f"t{n}-{i}-{n} " + str(n) * width)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    log.close()
    _assert_intact(read_lines(path), per_thread * n_threads, width)


def _wait_children(pids, deadline_s=10.0):
    deadline = time.monotonic() + deadline_s
    pending = set(pids)
    statuses = {}
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[pid] = status
                pending.discard(pid)
        if pending:
            time.sleep(0.01)
    for pid in pending:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert not pending, f"children {pending} did not finish"
    return statuses


def test_forked_children_share_the_file_without_interleaving(tmp_path):
    path = tmp_path / "error.log"
    log = ErrorLog(str(path), "info")
    width, per_thread, threads_per_child, n_children = 3000, 100, 2, 4
    pids = []
    for c in range(n_children):
        pid = os.fork()
        if pid == 0:  # child: inherits the descriptor
            code = 1
            try:
                def writer(n: int) -> None:
                    for i in range(per_thread):
                        log.info(f"p{os.getpid()}-{i}-{n} " + str(n) * width)

                ts = [threading.Thread(target=writer, args=(c * 2 + k,))
                      for k in range(threads_per_child)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    statuses = _wait_children(pids)
    log.close()
    assert all(os.waitstatus_to_exitcode(s) == 0 for s in statuses.values())
    lines = read_lines(path)
    _assert_intact(lines, per_thread * threads_per_child * n_children, width)
    assert {int(ERROR_LINE.match(line).group(4)) for line in lines} == set(pids)


def _fail_deep():
    raise KeyError("the missing key")


def test_exception_logs_message_and_traceback_in_one_write(tmp_path, monkeypatch):
    path = tmp_path / "error.log"
    log = ErrorLog(str(path))
    writes = []
    real_write = os.write

    def counting_write(fd, data):
        if fd == log.fileno():
            writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(logs.os, "write", counting_write)
    try:
        _fail_deep()
    except KeyError:
        log.exception("request failed")
    monkeypatch.undo()
    log.close()
    assert len(writes) == 1
    text = path.read_text()
    lines = text.splitlines()
    assert ERROR_LINE.match(lines[0]).group(3) == "error"
    assert lines[0].endswith("] request failed")
    assert lines[1] == "Traceback (most recent call last):"
    assert "in _fail_deep" in text
    assert lines[-1] == "KeyError: 'the missing key'"
    assert text.endswith("'the missing key'\n")


def test_exception_with_explicit_exception_outside_handler(tmp_path):
    path = tmp_path / "error.log"
    log = ErrorLog(str(path))
    try:
        _fail_deep()
    except KeyError as e:
        saved = e
    log.exception("later", saved)
    log.close()
    text = path.read_text()
    assert "] later\nTraceback" in text and "in _fail_deep" in text


def test_exception_without_exception_logs_the_message(tmp_path):
    log = ErrorLog(str(tmp_path / "e.log"))
    log.exception("nothing raised")
    log.close()
    (line,) = read_lines(tmp_path / "e.log")
    assert line.endswith("] nothing raised")


def test_exception_respects_level(tmp_path):
    log = ErrorLog(str(tmp_path / "e.log"), "crit")
    try:
        _fail_deep()
    except KeyError:
        log.exception("hidden")
    log.close()
    assert read_lines(tmp_path / "e.log") == []


# --------------------------------------------------------------------------
# wsgi.errors

@pytest.fixture
def stream(tmp_path):
    log = ErrorLog(str(tmp_path / "e.log"), "warn")
    messages = []
    s = ErrorStream(log)

    def read():
        return [(ERROR_LINE.match(line).group(3), ERROR_LINE.match(line).group(6))
                for line in read_lines(tmp_path / "e.log")]

    yield s, read, messages
    log.close()


def test_stream_buffers_partial_lines(stream):
    s, read, _ = stream
    assert s.write("part one, ") == 10
    s.write("part two")
    assert read() == []
    s.write("\nsecond line\nthird")
    assert read() == [("error", "part one, part two"), ("error", "second line")]
    s.flush()
    assert read()[-1] == ("error", "third")
    s.flush()  # nothing pending: nothing written
    assert len(read()) == 3


def test_print_to_stream_gives_one_line(stream):
    s, read, _ = stream
    print("hello", "world", file=s)
    s.writelines(["a\r\n", "b", "c\n"])
    assert read() == [("error", "hello world"), ("error", "a"), ("error", "bc")]


def test_stream_buffers_per_thread(stream):
    s, read, _ = stream
    s.write("main-")
    started = threading.Event()

    def other():
        s.write("other-")
        started.set()
        s.write("done\n")

    t = threading.Thread(target=other)
    t.start()
    assert started.wait(5)
    t.join(5)
    s.write("done\n")
    assert read() == [("error", "other-done"), ("error", "main-done")]


def test_stream_cuts_endless_line(stream):
    s, read, _ = stream
    s.write("x" * (ErrorStream.MAX_PENDING + 10))
    assert read() == [("error", "x" * (ErrorStream.MAX_PENDING + 10))]


def test_stream_accepts_bytes_and_rejects_other_types(stream):
    s, read, _ = stream
    s.write(b"bytes \xc3\xa9\n")
    assert read() == [("error", "bytes é")]
    with pytest.raises(TypeError, match="takes str, not int"):
        s.write(42)


# --------------------------------------------------------------------------
# AccessLog

def test_access_log_to_file(tmp_path, tz):
    path = tmp_path / "access.log"
    path.write_text("earlier\n")
    alog = AccessLog(str(path), COMMON)
    alog.log(record())
    alog.log(record(status=404, bytes_sent=0, request_line="GET /nope HTTP/1.1"))
    alog.close()
    assert read_lines(path) == [
        "earlier",
        '192.0.2.7 - - [23/Nov/2026:15:16:53 +0000] "GET /shop/cart?item=42&q=a%20b HTTP/1.1" 200 1234',
        '192.0.2.7 - - [23/Nov/2026:15:16:53 +0000] "GET /nope HTTP/1.1" 404 -',
    ]


def test_access_log_one_write_per_line(tmp_path, monkeypatch):
    alog = AccessLog(str(tmp_path / "a.log"), COMBINED)
    writes = []
    real_write = os.write
    monkeypatch.setattr(logs.os, "write",
                        lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))
    alog.log(record())
    monkeypatch.undo()
    alog.close()
    assert len(writes) == 1 and writes[0].endswith(b'"curl/8.5.0"\n')


def test_short_writes_are_completed(tmp_path, monkeypatch, tz):
    """A pipe or a signal can cut a write short; the rest must follow, in order."""
    elog = ErrorLog(str(tmp_path / "e.log"))
    alog = AccessLog(str(tmp_path / "a.log"), COMBINED)
    real_write = os.write
    monkeypatch.setattr(logs.os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    elog.error("a message longer than seven bytes")
    alog.log(record())
    monkeypatch.undo()
    elog.close()
    alog.close()
    assert read_lines(tmp_path / "e.log")[0].endswith("] a message longer than seven bytes")
    assert read_lines(tmp_path / "a.log") == [compile_format(COMBINED)(record())]


def test_access_log_dash_is_stdout(capfd, tz):
    alog = AccessLog("-", "%h %>s")
    alog.log(record())
    alog.close()
    assert capfd.readouterr().out == "192.0.2.7 200\n"
    assert os.fstat(1)


def test_access_log_bad_format_fails_before_opening(tmp_path):
    with pytest.raises(ValueError, match="%Y"):
        AccessLog(str(tmp_path / "a.log"), "%h %Y")


def test_access_log_reopen(tmp_path, tz):
    path = tmp_path / "a.log"
    alog = AccessLog(str(path), "%>s")
    alog.log(record(status=201))
    os.rename(path, tmp_path / "a.log.1")
    alog.reopen()
    alog.log(record(status=202))
    alog.close()
    assert read_lines(tmp_path / "a.log.1") == ["201"]
    assert read_lines(path) == ["202"]


def test_client_and_peer_addresses_as_apache_with_mod_remoteip():
    # %a (and %h) is the client RemoteIP found; %{c}a (and %{c}h) the peer that connected.
    from mpmserver.logs import AccessRecord

    fn = compile_format("%a %h %{c}a %{c}h")
    assert fn(AccessRecord(remote_addr="198.51.100.1", peer_addr="127.0.0.1")) == \
        "198.51.100.1 198.51.100.1 127.0.0.1 127.0.0.1"
    assert fn(AccessRecord(remote_addr="10.0.0.1")) == "10.0.0.1 10.0.0.1 10.0.0.1 10.0.0.1"


@pytest.mark.parametrize("line, parts", [
    ("GET /a?b=1 HTTP/1.1", (b"GET", b"/a?b=1", "HTTP/1.1")),
    ("GET /x", (b"GET", b"/x", "-")),
    ("GARBAGE", (b"GARBAGE", b"", "-")),
    ("", (b"-", b"", "-")),
    ("-", (b"-", b"", "-")),
    ("GET /a b HTTP/1.1", (b"GET", b"/a", "b HTTP/1.1")),
])
def test_a_record_built_from_its_request_line_alone(line, parts):
    # The listener (a request refused before h11 parsed it) and the master
    # (a request that died with its child) know only the line.
    rec = AccessRecord(remote_addr="192.0.2.7", request_line=line, status=400)
    assert (rec.method, rec.target, rec.protocol) == parts
    assert rec.request_line == (line or "-")
    assert compile_format("%m|%U|%q|%H|%r")(rec).split("|")[0] == parts[0].decode()
