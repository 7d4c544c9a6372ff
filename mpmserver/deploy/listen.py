"""The listening sockets: the owner of every Listen address.

The master binds them before the first fork (as root, so ports below 1024
work) and every child inherits them; a restart rebinds only what changed.
A unix socket (``Listen unix:PATH``) gets UnixSocketMode and UnixSocketGroup
before the privilege drop; a stale socket file left by a crash is replaced
only when it is a socket nobody answers on (a regular file is never
deleted), and the master removes its own socket files when it exits.

Under systemd socket activation (LISTEN_FDS, see systemd.py) the master
adopts the sockets it is passed before binding anything: a Listen address
that an inherited socket is bound to uses that socket instead of binding;
with no Listen line at all, the inherited sockets are the listeners; and an
inherited socket no Listen line names is served too (systemd queues
connections on it for us). Inherited sockets are never closed on a restart,
nor their files removed: systemd owns them.

A binary upgrade (upgrade.py) passes the old master's sockets the same way;
those the old master bound itself are then this master's own (reused for the
Listen line they are bound to, closed when no Listen line names them, their
unix socket files removed at exit), while those systemd passed stay systemd's.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterable
from typing import Any

from ..config import UNIX_PREFIX, is_unix
from . import systemd

Address = tuple[str, int]
WILDCARDS = frozenset(("0.0.0.0", "::", ""))


def bind_listeners(cfg: Any, existing: dict[Address, socket.socket] | None = None
                   ) -> dict[Address, socket.socket]:
    """Bind every Listen address, reusing the sockets of ``existing`` already
    bound to one (so a restart drops no queued connection) and closing the
    others.  On failure nothing new stays open and ``existing`` is untouched."""
    unused = {k: s for k, s in (existing or {}).items() if s not in _inherited.values()}
    out: dict[Address, socket.socket] = {}
    new: list[socket.socket] = []
    # With socket activation and no Listen line, the inherited sockets alone.
    listen = cfg.listen if getattr(cfg, "listen_explicit", True) or not _inherited else []
    for host, port in listen:
        key = (host, port)
        if key in unused and port != 0:  # port 0 asks for a new port each time
            out[key] = unused.pop(key)
            continue
        inherited = _inherited_for(key) or _take_upgraded(key)
        if inherited is not None:
            out[key] = inherited
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
    for addr, sock in _inherited.items():  # passed to us, so served, named by a Listen or not
        if sock not in out.values():
            out[addr] = sock
    close_listeners(unused.values())
    remove_unix_sockets(unused.values())
    # An old master's socket the new configuration no longer names: closed
    # here (its file stays: the old master may still serve on it until it stops).
    close_listeners(_upgraded.values())
    _upgraded.clear()
    return out


# --- socket activation -------------------------------------------------------

# The sockets systemd passed, by the address each is bound to: adopted once
# (the variables are then unset), served for the master's whole life; and
# the name systemd gave each, passed on again by a binary upgrade.
_inherited: dict[Address, socket.socket] = {}
_inherited_names: dict[socket.socket, str] = {}
# The sockets an old master bound itself and passed on in a binary upgrade,
# until bind_listeners() takes them for their Listen lines.
_upgraded: dict[Address, socket.socket] = {}
UPGRADE_NAME = "upgrade"  # LISTEN_FDNAMES name of a socket the old master bound


def adopt_activation(environ: Any = None, pid: int | None = None, owned: frozenset[int] = frozenset()
                     ) -> list[str]:
    """Adopt the sockets of socket activation, if any were passed to this
    process, and unset LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES so that no
    child or app misreads them. Returns one line per socket for the log.
    ``owned``: the descriptors an old master bound itself (a binary upgrade).
    Raises OSError naming the descriptor when one is not a listening stream socket."""
    environ = os.environ if environ is None else environ
    try:
        fds = systemd.listen_fds(environ, os.getpid() if pid is None else pid)
    except systemd.ActivationError as exc:
        raise OSError(errno.EINVAL, f"socket activation: {exc}") from None
    finally:
        for name in systemd.ACTIVATION_VARIABLES:
            environ.pop(name, None)
    return inherit_sockets(fds, owned)


def takeover_sockets(sockets: Iterable[socket.socket]) -> list[tuple[socket.socket, str, bool]]:
    """(socket, LISTEN_FDNAMES name, bound by us) of each listener, for a binary upgrade."""
    return [(s, _inherited_names.get(s, UPGRADE_NAME), s not in _inherited_names) for s in sockets]


def forget_unix_files(sockets: Iterable[socket.socket]) -> None:
    """After a binary upgrade the new master owns these sockets' files: never remove them here."""
    for sock in sockets:
        _unix_files.pop(sock, None)


def _take_upgraded(key: Address) -> socket.socket | None:
    for addr, sock in list(_upgraded.items()):
        if listen_matches(key, addr):
            del _upgraded[addr]
            if is_unix(addr[0]):
                _upgraded_files.append(sock)
            return sock
    return None


# Unix sockets taken from an old master: their files become ours (removed at
# exit) only once we serve, so that a new master that fails to start leaves
# the old one's files in place.
_upgraded_files: list[socket.socket] = []


def own_upgraded_files() -> None:
    """The new master serves: the unix socket files it inherited are its own now."""
    for sock in _upgraded_files:
        path = bound_address(sock)[0][len(UNIX_PREFIX):]
        try:
            st = os.stat(path)
        except OSError:
            continue
        _unix_files[sock] = (path, st.st_dev, st.st_ino)
    _upgraded_files.clear()


def inherit_sockets(fds: Iterable[tuple[int, str]], owned: frozenset[int] = frozenset()) -> list[str]:
    """Take these (fd, name) listening sockets as listeners (adopt_activation's
    mechanism); those in ``owned`` as an upgrade's, the others as systemd's."""
    lines = []
    for fd, name in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise OSError(exc.errno, f"socket activation: descriptor {fd} ({name}) is not a socket: "
                                     f"{exc.strerror}; check the socket unit's Listen lines") from None
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.detach()
            raise OSError(errno.EINVAL, f"socket activation: descriptor {fd} ({name}) is not a listening "
                                        "stream socket; use ListenStream= with Accept=no")
        sock.set_inheritable(False)
        addr = bound_address(sock)
        if fd in owned:
            _upgraded[addr] = sock
            lines.append(f"binary upgrade: descriptor {fd} is {url(addr)}, inherited from the old master")
            continue
        _inherited[addr] = sock
        _inherited_names[sock] = name
        lines.append(f"socket activation: descriptor {fd} ({name}) is {url(addr)}")
    return lines


def listen_matches(listen: Address, bound: Address) -> bool:
    """Does the Listen address ``listen`` name the socket bound to ``bound``?
    The same address and port (or path), or both wildcards on the same port
    (systemd's ListenStream=8000 is [::]:8000, Listen 8000 is 0.0.0.0:8000).
    Port 0 names no particular socket."""
    if is_unix(listen[0]) or is_unix(bound[0]):
        return listen[0] == bound[0]
    if listen[1] == 0 or listen[1] != bound[1]:
        return False
    return listen[0] == bound[0] or (listen[0] in WILDCARDS and bound[0] in WILDCARDS)


def _inherited_for(key: Address) -> socket.socket | None:
    for addr, sock in _inherited.items():
        if listen_matches(key, addr):
            return sock
    return None


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


def bind_agent(addr: Address, inherited_fd: int = -1) -> socket.socket:
    """AgentListen's socket: the one an old master passed in a binary upgrade
    when it is bound to ``addr``, else a new one (closing the passed one)."""
    if inherited_fd >= 0:
        sock = socket.socket(fileno=inherited_fd)
        sock.set_inheritable(False)
        if listen_matches(addr, bound_address(sock)):
            return sock
        sock.close()
    try:
        return _bind(addr[0], addr[1], 16)
    except OSError as exc:
        raise OSError(exc.errno, f"AgentListen: {exc.strerror}") from None


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


def url(addr: tuple, https: bool = False) -> str:
    """The http:// (https://) URL of a bound address (for the start-up notice); unix:PATH for a unix socket."""
    if is_unix(addr[0]):
        return addr[0]
    return f"{'https' if https else 'http'}://{host_port(addr[0], addr[1])}"
