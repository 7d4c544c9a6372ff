"""The event loop for the listener and the load generator: uvloop, or asyncio."""

from __future__ import annotations

import asyncio

try:  # imported here, in the master: a child may run as a user who cannot read site-packages
    import uvloop
except ImportError:  # pragma: no cover - depends on the platform
    uvloop = None

__all__ = ["choose", "new_event_loop"]


def choose(kind: str = "uvloop") -> tuple[str, str | None]:
    """The loop `EventLoop kind` gets ("uvloop" or "asyncio"), and a warning
    when uvloop was asked for but is not installed."""
    if kind != "uvloop":
        return "asyncio", None
    if uvloop is None:
        return "asyncio", "EventLoop uvloop: uvloop is not installed, using asyncio"
    return "uvloop", None


def new_event_loop(kind: str = "uvloop") -> tuple[asyncio.AbstractEventLoop, str, str | None]:
    """(loop, the kind it is, warning or None) for `EventLoop kind`."""
    name, warning = choose(kind)
    loop = uvloop.new_event_loop() if name == "uvloop" else asyncio.new_event_loop()
    return loop, name, warning
