"""A server TLS socket that behaves like the plain non-blocking socket the
listener and the workers already drive.

Python's SSLSocket raises SSLWantReadError / SSLWantWriteError where a
socket raises BlockingIOError, and refuses recv/send flags; this subclass
(the contexts' ``sslsocket_class``) turns "TLS needs the socket" into
BlockingIOError and ignores the flags (MSG_DONTWAIT: the socket is
non-blocking from before its handshake; MSG_PEEK, which would consume the
decrypted bytes, is refused with ValueError), so Channel, the listener's reads,
write completion and lingering close work on it unchanged.

Buffered plaintext: OpenSSL reads one record at a time, and the server
always asks for at least a record's worth (RECV_SIZE, 64 KiB, against
records of at most 16 KiB), so no decrypted byte is left inside the SSL
object where a readable descriptor could not announce it; ``recv`` also
drains ``pending()`` up to the size asked for, for any caller asking less.

A retried write passes the same bytes (SSL's rule): Channel and write
completion retry the unsent rest, which with OpenSSL's all-or-nothing
writes is the whole buffer, as required. A write takes at most WRITE_MAX
bytes, so that a large body makes progress in pieces as on a plain socket
(OpenSSL would otherwise take all of it or nothing): the worker can then
leave the last megabyte to the loop's write completion (the retry asks for
the same first WRITE_MAX bytes again, as SSL requires).

After ``shutdown()`` (lingering close, a cut) Python drops the TLS layer and
recv reads the raw socket: the last bytes are drained, not decrypted.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

__all__ = ["ServerTLSSocket", "remember_sni", "prepare_context"]

_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
_ENDED = (ssl.SSLZeroReturnError, ssl.SSLEOFError)
_raw_recv = socket.socket.recv
_raw_send = socket.socket.send
_PEEK = socket.MSG_PEEK
# The most one send() hands to OpenSSL (16 records).
WRITE_MAX = 262144


class ServerTLSSocket(ssl.SSLSocket):
    sni: str | None = None  # the server name the client asked for (SNI)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        sslobj = self._sslobj
        if sslobj is None:  # shut down: the raw socket
            return _raw_recv(self, buflen, flags)
        if flags & _PEEK:
            # A peek would consume: say so rather than lose the bytes.
            raise ValueError("MSG_PEEK on a TLS connection: the bytes are decrypted once")
        try:
            data = sslobj.read(buflen)
            while data and len(data) < buflen and sslobj.pending():
                data += sslobj.read(buflen - len(data))
            return data
        except _WANT:
            raise BlockingIOError(errno.EAGAIN, "TLS needs more bytes") from None
        except _ENDED:
            return b""

    def send(self, data: Any, flags: int = 0) -> int:
        sslobj = self._sslobj
        if sslobj is None:
            return _raw_send(self, data, flags)
        try:
            if len(data) > WRITE_MAX:
                return sslobj.write(memoryview(data)[:WRITE_MAX])
            return sslobj.write(data)
        except _WANT:
            raise BlockingIOError(errno.EAGAIN, "TLS cannot write yet") from None
        except _ENDED:
            raise BrokenPipeError(errno.EPIPE, "the client ended the TLS session") from None


def remember_sni(sslsock: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
    """SNI callback: keep the name the client asked for (SSL_TLS_SNI)."""
    sslsock.sni = server_name


def prepare_context(ctx: ssl.SSLContext) -> None:
    """Make the context wrap sockets as ServerTLSSocket and remember SNI
    (once per child: the master's context, inherited)."""
    ctx.sslsocket_class = ServerTLSSocket
    ctx.sni_callback = remember_sni
