"""The files Alias serves, opened once and kept open (nginx's
open_file_cache; Apache's mod_file_cache without its restart): a bounded
table of open descriptors by path, least recently used given up first.

Every lookup stats the path again, so a deploy that replaces a file (a new
inode, or the same one rewritten: another mtime or size) is seen at the
next request; only an unchanged file is served from the descriptor kept.
A file is opened only when it is a regular file whose real path stays
below its Alias directory (a symlink may lead out only with
``Options FollowSymLinks``); what cannot be opened is 404 (or 403 when
permission is denied or a symlink leads out).

Owned by one child's listener thread: no locks.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict

from ..http.framing import format_http_date
from ..modules import expires
from ..modules.static_files import ENCODINGS, FileFacts, content_type, etag_of

__all__ = ["OpenFile", "OpenFiles", "OPEN_FLAGS"]

OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


class OpenFile:
    """One open file: its descriptor, what fstat said when it was opened,
    and what is worked out once per file (type, validators, siblings)."""

    __slots__ = ("fd", "key", "facts", "content_type", "immutable", "siblings")

    def __init__(self, fd: int, st: os.stat_result, path: bytes, siblings: tuple[int, ...]) -> None:
        self.fd = fd
        self.key = (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)
        self.facts = FileFacts(st.st_size, st.st_mtime, etag_of(st.st_size, st.st_mtime_ns),
                               format_http_date(st.st_mtime))
        self.content_type = content_type(os.fsdecode(path))
        self.immutable = expires.is_hashed(path)
        # Indexes into ENCODINGS of the precompressed siblings found at open.
        self.siblings = siblings


class OpenFiles:
    def __init__(self, limit: int, follow_symlinks: bool) -> None:
        self.limit = max(1, limit)
        self.follow_symlinks = follow_symlinks
        self._open: OrderedDict[bytes, OpenFile] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def lookup(self, path: bytes, root: bytes) -> OpenFile | int:
        """The open file at ``path`` (below the Alias directory ``root``),
        or the status that refuses it: 404, or 403."""
        try:
            st = os.stat(path)
        except PermissionError:
            self._forget(path)
            return 403
        except (OSError, ValueError):  # gone, a component not a directory, too long, a loop
            self._forget(path)
            return 404
        entry = self._open.get(path)
        if entry is not None:
            if entry.key == (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size):
                self._open.move_to_end(path)
                return entry
            self._forget(path)  # replaced or rewritten since: opened again
        if not stat.S_ISREG(st.st_mode):
            return 404
        return self._open_new(path, root)

    def _open_new(self, path: bytes, root: bytes) -> OpenFile | int:
        asked = path
        if not self.follow_symlinks:
            # What is opened is the real path checked: a symlink swapped in
            # between is not followed.
            path = os.path.realpath(path)
            if not _below(path, os.path.realpath(root)):
                return 403
        try:
            fd = os.open(path, OPEN_FLAGS)
        except PermissionError:
            return 403
        except OSError:
            return 404
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return 404
        except OSError:
            os.close(fd)
            return 404
        siblings = tuple(i for i, (suffix, _) in enumerate(ENCODINGS) if os.path.isfile(path + suffix))
        entry = OpenFile(fd, st, path, siblings)
        self._open[asked] = entry
        while len(self._open) > self.limit:
            _, old = self._open.popitem(last=False)
            os.close(old.fd)
        return entry

    def _forget(self, path: bytes) -> None:
        entry = self._open.pop(path, None)
        if entry is not None:
            os.close(entry.fd)

    def close(self) -> None:
        while self._open:
            os.close(self._open.popitem()[1].fd)


def _below(real: bytes, root: bytes) -> bool:
    return real.startswith(root.rstrip(b"/") + b"/")
