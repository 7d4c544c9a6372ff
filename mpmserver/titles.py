"""Process and thread titles, so that ps, top -H and py-spy show what each is.

A title is a nicety, never a reason to fail: without setproctitle, or on a
platform where it cannot set one, nothing happens.
"""

from __future__ import annotations

try:  # imported here, in the master: a child may run as a user who cannot read site-packages
    import setproctitle as _setproctitle
except ImportError:  # pragma: no cover - it is a dependency
    _setproctitle = None


def set_process_title(title: str) -> None:
    if _setproctitle is not None:
        try:
            _setproctitle.setproctitle(title)
        except Exception:  # noqa: BLE001 - see the module docstring
            pass


def set_thread_title(name: str) -> None:
    """Name the calling OS thread (Linux keeps 15 characters); Python 3.11
    names only its own Thread objects."""
    if _setproctitle is not None:
        try:
            _setproctitle.setthreadtitle(name[:15])
        except Exception:  # noqa: BLE001 - see the module docstring
            pass
