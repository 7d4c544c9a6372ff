"""RequestReadTimeout: how long a request head and body may take to arrive (mod_reqtimeout).

Apache's syntax and meaning: ``handshake=10-20,MinRate=500
header=20-40,MinRate=500 body=20,MinRate=500`` (its 2.4 defaults for header
and body; the TLS handshake stage, which Apache leaves off, is on here: a
client that never finishes its handshake must not hold a descriptor
forever, and a stage left out keeps this default). The first number is the time allowed at the start; with
MinRate, each MinRate bytes received add one second, up to the second
number (no limit when there is none). ``header=0`` / ``body=0`` turn a stage
off, leaving only Timeout, which bounds each wait in any case. A request
that arrives too slowly is answered 408 when nothing of the response has
been sent, and closed.

Pure: parsing and the deadline arithmetic; the listener and the request
cycle set their timers from ``deadline()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Stage", "ReadTimeouts", "parse", "format_spec", "deadline", "DEFAULT"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage (head or body): seconds allowed at first, the most it may
    grow to (0 = no maximum), and bytes per second that earn one more second
    (0 = none). ``initial`` 0 means the stage is off."""

    initial: float = 0.0
    maximum: float = 0.0
    min_rate: int = 0

    @property
    def enabled(self) -> bool:
        return self.initial > 0


# The TLS handshake's stage when RequestReadTimeout does not name it.
DEFAULT_HANDSHAKE = Stage(10.0, 20.0, 500)


@dataclass(frozen=True, slots=True)
class ReadTimeouts:
    header: Stage = Stage()
    body: Stage = Stage()
    handshake: Stage = DEFAULT_HANDSHAKE


_STAGE = re.compile(r"(handshake|header|body)=(\d+)(?:-(\d+))?((?:,minrate=\d+)?)$", re.IGNORECASE)


def parse(value: str) -> ReadTimeouts:
    """``header=20-40,MinRate=500 body=20,MinRate=500`` -> ReadTimeouts; ValueError with the fix."""
    stages = {"header": Stage(), "body": Stage(), "handshake": DEFAULT_HANDSHAKE}
    for item in value.split():
        m = _STAGE.match(item)
        if m is None:
            raise ValueError(f"{item!r} is not of the form header=SECONDS[-MAX][,MinRate=BYTES], "
                             f"body=... or handshake=...")
        name, initial, maximum, rate = m.group(1).lower(), int(m.group(2)), m.group(3), m.group(4)
        top = int(maximum) if maximum else 0
        min_rate = int(rate.split("=")[1]) if rate else 0
        if top and top < initial:
            raise ValueError(f"{item!r}: the maximum ({top}) is below the initial timeout ({initial})")
        if top and not min_rate:
            raise ValueError(f"{item!r}: a maximum needs MinRate (it is what raises the timeout)")
        stages[name] = Stage(float(initial), float(top), min_rate)
    return ReadTimeouts(stages["header"], stages["body"], stages["handshake"])


def format_spec(timeouts: ReadTimeouts) -> str:
    """The directive's text for ``timeouts`` (parse's inverse)."""
    parts = []
    named = [("header", timeouts.header), ("body", timeouts.body)]
    if timeouts.handshake != DEFAULT_HANDSHAKE:
        named.insert(0, ("handshake", timeouts.handshake))
    for name, stage in named:
        text = f"{name}={stage.initial:g}"
        if stage.maximum:
            text += f"-{stage.maximum:g}"
        if stage.min_rate:
            text += f",MinRate={stage.min_rate}"
        parts.append(text)
    return " ".join(parts)


DEFAULT = parse("header=20-40,MinRate=500 body=20,MinRate=500")


def deadline(stage: Stage, started: float, received: int) -> float:
    """When the stage must be complete, given when it started and the bytes
    received so far; infinity when the stage is off."""
    # Read by the listener for every request head: plain comparisons, no
    # property or min() call (0.09 us against 0.23, Python 3.11).
    allowed = stage.initial
    if allowed <= 0:  # the stage is off
        return _FOREVER
    if stage.min_rate:
        allowed += received / stage.min_rate
    top = stage.maximum
    if top and allowed > top:
        allowed = top
    return started + allowed


_FOREVER = float("inf")
