"""Tests that open many sockets need a file descriptor limit to match.

A normal user's default soft limit is often 1024: raise it to the hard
limit (children started afterwards inherit it), or skip with the reason
when even the hard limit is too low.
"""

from __future__ import annotations

import resource


def raise_nofile(needed: int) -> str | None:
    """Make the soft RLIMIT_NOFILE at least ``needed`` by raising it to the
    hard limit. Returns None when it is enough, else why it cannot be."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        return (f"needs {needed} file descriptors but the hard limit is {hard} "
                f"(ulimit -Hn); raise it to run this test")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        return f"needs {needed} file descriptors; raising the soft limit {soft} to {hard} failed: {exc}"
    return None


def need_descriptors(needed: int) -> None:
    """raise_nofile(), or skip the calling test with the reason."""
    import pytest

    reason = raise_nofile(needed)
    if reason:
        pytest.skip(reason)
