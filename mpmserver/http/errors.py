"""Request errors: one hierarchy, each error carrying the status the client gets.

Two families, by where they are raised:

- ``HeadError``: the request head is refused before the app runs (400, 408,
  414, 431, 501, and 413 for a declared Content-Length over LimitRequestBody).
  Raised by the head checks (protocol.py) in the listener or, for pipelined
  requests, in the worker.
- ``BodyError``: reading the request body failed while the app was reading
  it through ``wsgi.input``. These are ``OSError`` subclasses on purpose, so
  an app that guards its reads with ``except OSError`` (the contract of
  mod_wsgi, which raises ``OSError("request data read error")``, and of
  gunicorn, whose ``NoMoreData`` and chunk errors are ``IOError``) handles
  all of them:

  * ``ClientDisconnected``: the client closed the connection, or sent nothing
    for Timeout seconds, in the middle of the body; nobody is left to answer
    (``status`` is None).
  * ``BodyTooLarge``: a chunked body grew past LimitRequestBody (413).
  * ``BodyTooSlow``: the body arrived slower than RequestReadTimeout allows
    (408).
  * ``MalformedBody``: a broken chunk, or trailer fields over the head
    limits (400 or 431).
  * ``SpoolFull``: the listener cannot spool the body now (503; never seen
    by the app: the request is answered before a worker takes it).

  If the app lets one escape, the server answers ``status`` (when the
  response has not started and someone is listening) and closes the
  connection; it is not an app error (no traceback, no 500).

Every error response the server writes itself is built by error_response()
and written by the listener (child/listener/), which finishes short writes
before it lingers.
"""

from __future__ import annotations

from functools import lru_cache

from .framing import reason_phrase

__all__ = [
    "RequestError",
    "HeadError",
    "BodyError",
    "ClientDisconnected",
    "BodyTooLarge",
    "BodyTooSlow",
    "SpoolFull",
    "MalformedBody",
    "internal_error",
    "error_response",
]


class RequestError(Exception):
    """A request the server answers itself: ``status`` and a short ``reason``,
    the text of the error body. The reason is a fixed text, never anything
    taken from the request (no reprs, nothing reflected); ``detail`` says
    more, for the error log only.

    ``status`` None means there is nobody to answer (the client is gone).
    """

    status: int | None = 400
    reason: str = ""
    detail: str | None = None

    def __init__(self, status: int, reason: str, detail: str | None = None) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason  # a fixed text: it is the body of the error response
        self.detail = detail  # what the error log says beyond it; never sent

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class HeadError(RequestError):
    """A request head that must be refused: answer ``status`` and close."""


# The body of a 500: nothing of the app's exception reaches the client.
INTERNAL_ERROR_REASON = "The server encountered an internal error."


def internal_error() -> RequestError:
    """What the client of a request whose app failed is answered."""
    return RequestError(500, INTERNAL_ERROR_REASON)


class BodyError(OSError, RequestError):
    """Reading the request body failed; the app sees an OSError.

    Its message (``str()``, ``detail``) is for the app and the error log; the
    client is answered with ``client_error()``, a fixed text for the status.
    """

    status: int | None = 400

    def __init__(self, detail: str, status: int | None = None) -> None:
        # OSError(detail) alone: two arguments would be taken as (errno, strerror).
        OSError.__init__(self, detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.reason = _BODY_REASONS.get(self.status or 400, "malformed request body")

    def client_error(self) -> RequestError:
        return RequestError(self.status or 400, self.reason, str(self))


_BODY_REASONS = {
    400: "malformed request body",
    408: "request body not received in time",
    413: "request body too large",
    431: "request trailer fields too large",
    503: "request body cannot be held now",
}


class ClientDisconnected(BodyError):
    """The client went away, or stalled past Timeout, while the app read the body."""

    status = None


class BodyTooLarge(BodyError):
    """The request body grew past LimitRequestBody while the app read it."""

    status = 413


class BodyTooSlow(BodyError):
    """The body arrived slower than RequestReadTimeout allows (408)."""

    status = 408


class SpoolFull(BodyError):
    """A request body the listener would spool past SpoolLimitPerChild, or
    that the SpoolDirectory cannot hold (503: a later try may succeed)."""

    status = 503


class MalformedBody(BodyError):
    """A broken chunk, or trailer fields over LimitRequestFields/FieldSize."""

    status = 400


@lru_cache(maxsize=256)  # reasons are a small fixed set; this is only a bound
def _error_parts(status: int, reason: str, server: bytes) -> tuple[bytes, bytes]:
    text = reason_phrase(status, b"Unknown").decode("latin-1")
    body = f"{status} {text}\n{reason}\n".encode("utf-8", "replace")
    before_date = f"HTTP/1.1 {status} {text}\r\nDate: ".encode("latin-1")
    after_date = (
        b"\r\nServer: " + server
        + b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
        + str(len(body)).encode("ascii")
        + b"\r\nConnection: close\r\n\r\n" + body
    )
    return before_date, after_date


def error_response(status: int, reason: str, server: bytes, date: bytes) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection.

    ``date`` is the IMF-fixdate value for the Date header (no name, no CRLF).
    The body is "<status> <phrase>\\n<reason>\\n" as text/plain. Everything
    but the date is built once per (status, reason, server).
    """
    before, after = _error_parts(status, reason, server)
    return before + date + after
