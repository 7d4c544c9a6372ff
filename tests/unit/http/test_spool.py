"""Spooling decisions (http/spool.py): which bodies the loop receives and
where, and the child's budget. Pure: no sockets, no files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpmserver.config import ConfigError, from_kwargs, load
from mpmserver.http.spool import BUFFER, SPOOL, STREAM, SpoolBudget, SpoolLimits, body_plan, target_path

HEAD = b"POST /upload/x?a=b HTTP/1.1\r\nHost: a\r\n\r\n"
K = 1024


def limits(**kw) -> SpoolLimits:
    cfg = from_kwargs(**kw)
    return SpoolLimits.from_config(cfg)


def test_the_defaults_buffer_small_bodies_and_spool_the_rest_up_to_limit_request_body():
    lim = limits()
    assert (lim.body_buffer, lim.body_spool) == (64 * K, 1 << 30)
    assert body_plan(1, lim, HEAD) == BUFFER
    assert body_plan(64 * K, lim, HEAD) == BUFFER
    assert body_plan(64 * K + 1, lim, HEAD) == SPOOL
    assert body_plan(1 << 30, lim, HEAD) == SPOOL
    # Over LimitRequestBody: the worker answers 413 without reading it.
    assert body_plan((1 << 30) + 1, lim, HEAD) == STREAM
    assert body_plan(0, lim, HEAD) == STREAM  # no body, or a client waiting for 100 Continue


def test_request_body_spool_is_bounded_by_limit_request_body():
    assert limits(limit_request_body=100 * K).body_spool == 100 * K
    assert limits(limit_request_body=0, request_body_spool=5 * K).body_spool == 5 * K
    lim = limits(request_body_spool=100 * K)
    assert body_plan(100 * K, lim, HEAD) == SPOOL
    assert body_plan(100 * K + 1, lim, HEAD) == STREAM  # larger: the app streams it
    # A LimitRequestBody under RequestBodyBuffer: the worker's 413 still.
    assert body_plan(10 * K, limits(limit_request_body=K), HEAD) == STREAM


def test_spooling_off_keeps_the_buffer_alone():
    lim = limits(request_body_spool=0)
    assert body_plan(64 * K, lim, HEAD) == BUFFER
    assert body_plan(64 * K + 1, lim, HEAD) == STREAM
    assert body_plan(-1, lim, HEAD) == BUFFER  # chunked: buffered, the rest read by the worker
    assert body_plan(-1, limits(request_body_spool=0, request_body_buffer=0), HEAD) == STREAM


def test_a_chunked_body_is_buffered_first_even_without_a_buffer_when_it_will_be_spooled():
    assert body_plan(-1, limits(), HEAD) == BUFFER
    assert body_plan(-1, limits(request_body_buffer=0), HEAD) == BUFFER  # a buffer of nothing, then the spool
    assert body_plan(1, limits(request_body_buffer=0), HEAD) == SPOOL


def test_excluded_prefixes_stream_past_the_buffer():
    lim = limits(request_body_spool_exclude=["/upload/", "/stream"])
    assert body_plan(1 << 20, lim, HEAD) == STREAM
    assert body_plan(K, lim, HEAD) == BUFFER  # small bodies are still buffered
    assert body_plan(-1, limits(request_body_spool_exclude=["/upload/"], request_body_buffer=0), HEAD) == STREAM
    assert body_plan(1 << 20, lim, b"POST /other HTTP/1.1\r\n\r\n") == SPOOL
    assert body_plan(1 << 20, lim, b"POST /streaming HTTP/1.1\r\n\r\n") == STREAM  # a prefix, as documented
    assert body_plan(1 << 20, lim, b"POST http://a.example/upload/y HTTP/1.1\r\n\r\n") == STREAM


@pytest.mark.parametrize("head, path", [
    (b"POST /a/b?x=/c HTTP/1.1\r\n", b"/a/b"),
    (b"POST http://h:80/a?q HTTP/1.1\r\n", b"/a"),
    (b"POST https://h HTTP/1.1\r\n", b"/"),
    (b"OPTIONS * HTTP/1.1\r\n", b"/"),
])
def test_target_path(head, path):
    assert target_path(head) == path


def test_the_exclude_directive_takes_url_paths(tmp_path: Path):
    conf = tmp_path / "m.conf"
    conf.write_text("RequestBodySpoolExclude /a/ /b/\nRequestBodySpoolExclude /c/\nResponseSpool 8M\n")
    cfg, _ = load(str(conf))
    assert cfg.request_body_spool_exclude == ["/a/", "/b/", "/c/"]
    assert cfg.response_spool == 8 << 20
    conf.write_text("RequestBodySpoolExclude upload\n")
    with pytest.raises(ConfigError, match=r"line 1 of .*m.conf: RequestBodySpoolExclude: 'upload' must be a URL path prefix"):
        load(str(conf))
    conf.write_text("SpoolDirectory /no/such/dir\n")
    with pytest.raises(ConfigError, match="SpoolDirectory"):
        load(str(conf))


def test_the_budget_bounds_the_child_and_gives_back():
    budget = SpoolBudget(disk_limit=100, memory_limit=10)
    assert budget.take_disk(60) and budget.take_disk(40)
    assert not budget.take_disk(1) and budget.refused == 1
    assert budget.take_memory(10) and not budget.take_memory(1)
    budget.give_back(40, 10)
    assert (budget.disk, budget.memory) == (60, 0)
    assert budget.take_disk(40)
    assert SpoolBudget(0, 0).take_disk(1 << 40)  # SpoolLimitPerChild 0: no bound


def test_the_memory_of_a_child_s_queues_is_sixteen_connections_worth():
    assert limits(response_spool_memory=K).memory_per_child == 16 * K


def test_the_listener_answers_100_continue_for_the_bodies_it_spools():
    from mpmserver.http.spool import answering_continue, without_expect

    lim = limits()
    assert answering_continue(1 << 20, lim, HEAD)
    assert not answering_continue(1000, lim, HEAD)  # small: a worker answers when the app reads
    assert not answering_continue(-1, lim, HEAD)  # chunked: a worker's
    assert not answering_continue(1 << 20, limits(request_body_spool_exclude=["/upload/"]), HEAD)
    head = b"POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"
    buf, end = without_expect(head + b"body", len(head))
    assert buf == b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nbody" and buf[end:] == b"body"
