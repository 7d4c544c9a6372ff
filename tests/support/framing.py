"""Sending raw requests and reading what comes back, for the differential
framing corpus (tests/external/framing_corpus.py, test_framing_corpus.py):
one connection per case, everything read until the server closes or a short
deadline passes (a read timeout is "no answer" from there on), then the
bytes split into responses and classified. Pure parts (split, classify)
need no socket."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# What the echo app (tests/apps/framing_echo.py) saw: method, path, query,
# body length, body hash.
Seen = tuple[str, str, str, int, str]


@dataclass(frozen=True)
class Answer:
    """A server's answer to one case: the first final status (None: nothing
    came back), how many final responses, what the app saw for each 2xx."""
    status: int | None
    responses: int
    seen: tuple[Seen, ...]

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def short(self) -> str:
        return f"{self.status or '-'}x{self.responses}"


def exchange(port: int, raw: bytes, deadline: float = 5.0, idle: float = 3.0) -> bytes:
    """Send ``raw`` on a new connection; every byte the server sends until it
    closes, resets, stays silent ``idle`` seconds or ``deadline`` passes."""
    out = bytearray()
    end = time.monotonic() + deadline
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=idle) as s:
            try:
                s.sendall(raw)
            except OSError:
                pass  # closed early (a refusal): what it sent is still readable
            while (left := end - time.monotonic()) > 0:
                s.settimeout(min(idle, left))
                data = s.recv(65536)
                if not data:
                    break
                out += data
    except OSError:
        pass  # reset or timeout: what came before counts
    return bytes(out)


def _body_end(head: bytes, data: bytes, start: int) -> int | None:
    """Where the body that starts at ``start`` ends (Content-Length or
    chunked); None when it is cut short; len(data) for close-delimited."""
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        pos = start
        while True:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                return None
            try:
                size = int(data[pos:eol].split(b";")[0], 16)
            except ValueError:
                return None
            if size == 0:
                end = data.find(b"\r\n\r\n", eol)
                return None if end < 0 else end + 4
            pos = eol + 2 + size + 2
    if b"content-length" in fields:
        end = start + int(fields[b"content-length"])
        return end if end <= len(data) else None
    return len(data)


def split_responses(data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each complete final response in ``data``, in order
    (1xx interim responses left out; an HTTP/0.9 answer counts as a 200)."""
    if data.startswith(b"{"):
        # An HTTP/0.9 simple response (nginx answers an HTTP/0.9 request so):
        # the body alone, the echo app's JSON.
        return [(200, data)]
    out: list[tuple[int, bytes]] = []
    pos = 0
    while data.startswith(b"HTTP/", pos):
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            break
        head = data[pos:head_end]
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            break
        if 100 <= status < 200:
            pos = head_end + 4
            continue
        end = _body_end(head, data, head_end + 4)
        if end is None:
            break
        out.append((status, data[head_end + 4:end]))
        pos = end
    return out


def classify(data: bytes) -> Answer:
    responses = split_responses(data)
    seen = []
    for status, body in responses:
        if 200 <= status < 300:
            try:
                s = json.loads(body)
                seen.append((s["m"], s["p"], s["q"], s["n"], s["h"]))
            except (ValueError, KeyError, TypeError):
                pass
    return Answer(responses[0][0] if responses else None, len(responses), tuple(seen))


def run_cases(port: int, raws: list[bytes], workers: int = 16, **timeouts: float) -> list[Answer]:
    """Every raw request on its own connection, ``workers`` at a time."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda raw: classify(exchange(port, raw, **timeouts)), raws))


def tag_of(query: str) -> int | None:
    """The case index a corpus request names in its query (``c=N``)."""
    return next((int(p[2:]) for p in query.split("&") if p.startswith("c=") and p[2:].isdigit()), None)


def desyncs(got: list[Answer], log_lines: list[str]) -> list[tuple[int | None, str]]:
    """(case, what) for each sign that a proxy and the server behind it read
    the requests differently: a request the app logged (one JSON line each,
    tests/apps/framing_echo.py) that no client got an answer to, or an answer
    that reached the connection of another case than the one it names."""
    answered = Counter(s for a in got for s in a.seen)
    logged = Counter((d["m"], d["p"], d["q"], d["n"], d["h"]) for d in map(json.loads, log_lines))
    out = [(tag_of(s[2]), f"the app saw {s} but no client got its answer") for s in logged - answered]
    out += [(i, f"answer to another connection's request: {s}") for i, a in enumerate(got) for s in a.seen
            if tag_of(s[2]) not in (None, i)]
    return out
