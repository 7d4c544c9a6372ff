"""The listening sockets: the owner of every Listen address.

The master binds them before the first fork (as root, so ports below 1024
work) and every child inherits them; a restart rebinds only what changed.
A unix socket (``Listen unix:PATH``) gets UnixSocketMode and UnixSocketGroup
before the privilege drop; a stale socket file left by a crash is replaced
only when it is a socket nobody answers on (a regular file is never
deleted), and the master removes its own socket files when it exits.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterable
from typing import Any

from .config import UNIX_PREFIX, is_unix

Address = tuple[str, int]


def bind_listeners(cfg: Any, existing: dict[Address, socket.socket] | None = None
                   ) -> dict[Address, socket.socket]:
    """Bind every Listen address, reusing the sockets of ``existing`` already
    bound to one (so a restart drops no queued connection) and closing the
    others.  On failure nothing new stays open and ``existing`` is untouched."""
    unused = dict(existing or {})
    out: dict[Address, socket.socket] = {}
    new: list[socket.socket] = []
    for host, port in cfg.listen:
        key = (host, port)
        if key in unused and port != 0:  # port 0 asks for a new port each time
            out[key] = unused.pop(key)
            continue
        try:
            if is_unix(host):
                out[key] = _bind_unix(host[len(UNIX_PREFIX):], cfg.listen_backlog, cfg.unix_socket_mode,
                                      cfg.unix_socket_group)
            else:
                out[key] = _bind(host, port, cfg.listen_backlog)
        except OSError:
            close_listeners(new)  # the reused ones still serve: the caller keeps them
            raise
        new.append(out[key])
    close_listeners(unused.values())
    remove_unix_sockets(unused.values())
    return out


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"could not bind to address {host_port(host, port)}: "
                                 f"{exc.strerror}") from None
    # Children get the sockets by fork; nothing they exec may keep them.
    sock.set_inheritable(False)
    return sock


# The files of the unix sockets bound here: (device, inode) by socket, so
# that only the file we created is ever removed, not a successor's.
_unix_files: dict[socket.socket, tuple[str, int, int]] = {}


def _bind_unix(path: str, backlog: int, mode: int, group: str | None) -> socket.socket:
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Created with no permission for anyone, then opened up: no moment
        # where the socket is wider than asked.
        old_umask = os.umask(0o777)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        if group is not None:
            os.chown(path, -1, _gid(group))
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"could not bind to address unix:{path}: {exc.strerror or exc}") from None
    except KeyError as exc:
        sock.close()
        raise OSError(errno.EINVAL, f"could not bind to address unix:{path}: {exc.args[0]}") from None
    sock.set_inheritable(False)
    st = os.stat(path)
    _unix_files[sock] = (path, st.st_dev, st.st_ino)
    return sock


def _gid(group: str) -> int:
    import grp

    if group.startswith("#"):
        return int(group[1:])
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise KeyError(f"UnixSocketGroup {group!r}: no such group") from None


def _clear_stale(path: str) -> None:
    """A socket file left by a server that is gone is removed; anything else
    in the way is an error (a live server, a regular file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"could not bind to address unix:{path}: "
                                    "the path exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nobody listens: stale
    except OSError as exc:
        raise OSError(exc.errno, f"could not bind to address unix:{path}: cannot tell whether the socket "
                                 f"there is in use ({exc.strerror or exc}); remove it if it is stale") from None
    else:
        raise OSError(errno.EADDRINUSE, f"could not bind to address unix:{path}: "
                                        "another server is listening on it")
    finally:
        probe.close()
    os.unlink(path)


def remove_unix_sockets(sockets: Iterable[socket.socket]) -> None:
    """Remove the files of these unix sockets, if they are still the ones we
    bound (the master calls this as it exits, with the sockets closed)."""
    for sock in sockets:
        entry = _unix_files.pop(sock, None)
        if entry is None:
            continue
        path, dev, ino = entry
        try:
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) == (dev, ino):
                os.unlink(path)
        except OSError:
            pass


def bound_address(sock: socket.socket) -> tuple[str, int]:
    """(host, port) of a listening socket; ("unix:PATH", 0) for a unix one."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return UNIX_PREFIX + (name.decode() if isinstance(name, bytes) else name), 0
    return name[0], name[1]


def close_listeners(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(addr: tuple) -> str:
    """The http:// URL of a bound address (for the start-up notice); unix:PATH for a unix socket."""
    if is_unix(addr[0]):
        return addr[0]
    return f"http://{host_port(addr[0], addr[1])}"
