"""Files the root master writes, opened so that they cannot be turned against root.

A process running as the User (a child compromised through the app) can
plant a symbolic link, or a hard link, in any directory it can write. If the
root master then opened that path as usual, it would truncate or append to
whatever file the link names (/etc/shadow, root's crontab). So:

- the PidFile is written to a new file (O_CREAT | O_EXCL | O_NOFOLLOW) in the
  same directory and renamed over the path: rename replaces a link, it never
  writes through one; at exit it is removed only if the path still names the
  file written (unlink never follows a link either);
- a log file (ErrorLog, CustomLog, at start and on every reopen) is opened
  with O_NOFOLLOW, unless the path is a symbolic link owned by root (or by
  the user the server runs as) - an administrator's link, followed; the
  entry is looked at again after the open, so a swap in between is refused;
- at start, a warning names the directory of a PidFile or log file that the
  User, or every user, can write (Apache's security tips document the risk;
  mpmserver checks it).

Policy (what is refused, what is warned about, and the words) is the pure
functions at the top, tested on made-up stat results; the mechanism below
them makes the system calls. Stdlib only: logs.py, master/ (master, startup,
reconfigure) and deploy/upgrade_takeover.py import it.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from typing import Any

__all__ = [
    "UnsafeFileError", "link_refusal", "unsafe_directory", "directory_warning",
    "open_append", "write_pid_file", "write_new_file", "remove_pid_file", "PidFile", "directories_up", "check_directories",
]

_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
LOG_FILE_MODE = 0o644
PID_FILE_MODE = 0o644


# --- policy -----------------------------------------------------------------

def link_refusal(what: str, path: str, st: Any, euid: int) -> str | None:
    """Why the entry ``st`` (an lstat or fstat result) at ``path`` must not be
    written through by a process of effective uid ``euid``; None if it may.

    A symbolic link is followed only when root or ``euid`` owns it: anyone
    else could have pointed it anywhere. As root, a regular file with more
    than one hard link is refused too: a link to a file of root's can be made
    wherever the User can write (unless fs.protected_hardlinks stops it).
    """
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid in (0, euid):
            return None
        return (f"{what} {path} is a symbolic link owned by uid {st.st_uid}, not root; refusing "
                f"to follow it (whoever can write that directory could point it at any file root "
                f"can write): remove the link, or make it a root-owned link or a plain file")
    if euid == 0 and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        return (f"{what} {path} has {st.st_nlink} hard links; refusing to write it as root (a hard "
                f"link can name any file of the same file system): remove the other links, or "
                f"remove the file and let the server create it")
    return None


def unsafe_directory(st: Any, uid: int, gids: Iterable[int], holds_file: bool) -> str | None:
    """Why the directory ``st`` lets the User (``uid``, member of ``gids``)
    or every user replace entries in it; None if it does not.

    ``holds_file`` is True for the file's own directory. Its ancestors are
    judged with their sticky bit: in a sticky directory (/tmp) only an
    entry's owner may rename or remove it, and that owner is checked one
    level down. The file's own directory is judged without: a sticky,
    world-writable directory still lets anyone create the path first.
    """
    mode = st.st_mode
    if st.st_uid == uid:
        return f"is owned by the User (uid {uid})"
    protected = bool(mode & stat.S_ISVTX) and not holds_file
    if protected:
        return None
    if mode & stat.S_IWOTH:
        return "is writable by every user"
    if mode & stat.S_IWGRP and st.st_gid in set(gids):
        return f"is writable by group {st.st_gid}, which the User is in"
    return None


def directory_warning(what: str, path: str, chain: list[tuple[str, Any]], user: str, uid: int,
                      gids: Iterable[int]) -> str | None:
    """The start-up warning for the file ``path`` given the stat results of
    its directory and every ancestor (``chain``, nearest first); None when
    only root (or a trusted owner) can change what the path names."""
    gids = frozenset(gids)
    for i, (directory, st) in enumerate(chain):
        why = unsafe_directory(st, uid, gids, holds_file=(i == 0))
        if why is None:
            continue
        if i == 0 and st.st_mode & stat.S_ISVTX:
            fix = "keep the file in a directory only root can write"
        else:
            fix = (f"make {directory} writable by root only (chown root {directory}; "
                   f"chmod go-w {directory}), or keep the file in a directory only root can write")
        return (f"{what} {path}: directory {directory} {why}, so a process running as User {user} "
                f"could put a link there that the root master would write through; {fix}")
    return None


# --- mechanism --------------------------------------------------------------

class UnsafeFileError(OSError):
    """A file root must not write: a link it refuses to write through, or a
    path swapped while it was being opened. str() says which and what to do."""

    def __str__(self) -> str:
        return self.strerror


def _same_entry(a: Any, b: Any) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _lstat_or_none(path: str) -> Any:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def open_append(path: str, what: str, euid: int | None = None) -> int:
    """Open ``path`` for appending (created 0644 if missing) without writing
    through a link that link_refusal() refuses; raises OSError naming the
    path and what to do."""
    euid = os.geteuid() if euid is None else euid
    try:
        before = _lstat_or_none(path)
        refusal = before is not None and link_refusal(what, path, before, euid)
        if refusal:
            raise UnsafeFileError(errno.ELOOP, refusal)
        follow = before is not None and stat.S_ISLNK(before.st_mode)
        fd = os.open(path, _APPEND_FLAGS | (0 if follow else _NOFOLLOW), LOG_FILE_MODE)
    except UnsafeFileError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW met a link made since the lstat
            raise UnsafeFileError(errno.ELOOP, f"{what} {path} became a symbolic link while it was "
                                  f"being opened; refusing to follow it: check who can write its "
                                  f"directory") from None
        # OSError(errno, text) comes back as its errno's subclass
        # (PermissionError...), so callers can still catch those.
        raise OSError(e.errno, f"could not open {what} {path!r}: {e.strerror}") from None
    try:
        _check_opened(fd, path, what, before if follow else None, euid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_opened(fd: int, path: str, what: str, link: Any, euid: int) -> None:
    """After the open: the path still names what was opened (the same root
    link, or the very file), and the file itself is not refused."""
    now = _lstat_or_none(path)
    opened = os.fstat(fd)
    if link is not None:
        swapped = now is None or not _same_entry(now, link)
    else:
        swapped = now is None or not _same_entry(now, opened)
    if swapped:
        raise UnsafeFileError(errno.EAGAIN, f"{what} {path} was replaced while it was being opened; "
                              f"refusing to write it: check who can write its directory")
    refusal = link_refusal(what, path, opened, euid)
    if refusal:
        raise UnsafeFileError(errno.EMLINK, refusal)


def write_pid_file(path: str, pid: int) -> tuple[int, int]:
    """Write ``pid`` to ``path`` through a new file renamed over it; the
    (st_dev, st_ino) written, for remove_pid_file()."""
    return write_new_file(path, f"{pid}\n", "PidFile")


def write_new_file(path: str, text: str, what: str) -> tuple[int, int]:
    """Write ``text`` to ``path`` through a new file renamed over it (the
    PidFile and its companions: never written through a link); the
    (st_dev, st_ino) written, for remove_pid_file()."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        # mkstemp opens O_CREAT | O_EXCL | O_NOFOLLOW with a random name.
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    except OSError as e:
        raise OSError(e.errno, f"could not write {what} {path}: cannot create a file in "
                               f"{directory}: {e.strerror}") from None
    try:
        try:
            os.fchmod(fd, PID_FILE_MODE)
            os.write(fd, text.encode())
            st = os.fstat(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)  # replaces a link at path, never follows it
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OSError(e.errno, f"could not write {what} {path}: {e.strerror}") from None
    return st.st_dev, st.st_ino


def remove_pid_file(path: str, written: tuple[int, int]) -> bool:
    """Remove ``path`` if it still names the file write_pid_file() wrote
    (not a link put in its place, nor another server's PidFile)."""
    st = _lstat_or_none(path)
    if st is None or not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != written:
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


class PidFile:
    """The PidFile a master wrote, and where it is now: the one owner of
    that fact (a binary upgrade renames it, a rollback writes it anew, the
    exit removes it only if it is still the file written)."""

    def __init__(self, path: str | None) -> None:
        self.path = path  # the configured PidFile (None: none)
        self.written: tuple[str, tuple[int, int]] | None = None  # (where it is, (st_dev, st_ino))
        # Files written beside it (a graceful restart's outcome): path -> (st_dev, st_ino).
        self.companions: dict[str, tuple[int, int]] = {}

    def write(self) -> None:
        if self.path:
            self.written = self.path, write_pid_file(self.path, os.getpid())

    def rename(self, to: str) -> str | None:
        """Move our PidFile to ``to``; an error message, or None when done
        (or when there is no PidFile)."""
        if self.written is None:
            return None
        path, ident = self.written
        try:
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) != ident:
                return f"{path} is no longer the file this master wrote"
            os.rename(path, to)
        except OSError as exc:
            return str(exc)
        self.written = to, ident
        return None

    def write_again(self) -> None:
        """Back at the configured path as a new file (a new inode is how
        -k upgrade tells a rollback from a file not yet renamed), and the
        renamed one removed. Raises OSError."""
        if self.written is None or not self.path or self.written[0] == self.path:
            return
        moved = self.written
        self.write()
        remove_pid_file(*moved)

    def write_companion(self, path: str, text: str, what: str) -> None:
        """Write (again) a file that lives and goes with the PidFile. Raises OSError."""
        self.companions[path] = write_new_file(path, text, what)

    def remove(self) -> None:
        if self.written is not None:
            remove_pid_file(*self.written)
            self.written = None
        for path, ident in self.companions.items():
            remove_pid_file(path, ident)
        self.companions.clear()


def directories_up(path: str) -> list[tuple[str, Any]]:
    """(directory, stat) from ``path``'s directory up to /, links resolved;
    a directory that cannot be stat'ed ends the list."""
    chain = []
    d = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            chain.append((d, os.stat(d)))
        except OSError:
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return chain


def check_directories(files: Iterable[tuple[str, str]], user: str, uid: int,
                      gids: Iterable[int]) -> list[str]:
    """Warnings for the (what, path) files whose directories the User or
    every user can write, one per file."""
    gids = frozenset(gids)
    warnings = []
    for what, path in files:
        w = directory_warning(what, path, directories_up(path), user, uid, gids)
        if w is not None:
            warnings.append(w)
    return warnings
