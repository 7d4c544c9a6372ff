"""mpmserver.eventloop: the one place a loop is chosen and made."""

import asyncio

import pytest

from mpmserver import eventloop


def test_uvloop_falls_back_to_asyncio_with_a_warning(monkeypatch):
    monkeypatch.setattr(eventloop, "uvloop", None)  # as if `import uvloop` had failed
    assert eventloop.choose("uvloop") == ("asyncio", "EventLoop uvloop: uvloop is not installed, using asyncio")
    loop, name, warning = eventloop.new_event_loop("uvloop")
    try:
        assert name == "asyncio" and "uvloop is not installed" in warning
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def test_asyncio_is_plain_asyncio():
    loop, name, warning = eventloop.new_event_loop("asyncio")
    try:
        assert (name, warning) == ("asyncio", None)
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def test_uvloop_when_installed():
    uvloop = pytest.importorskip("uvloop")
    loop, name, warning = eventloop.new_event_loop()
    try:
        assert (name, warning) == ("uvloop", None) and isinstance(loop, uvloop.Loop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()
