"""A server's memory as the machine pays for it: the PSS of every process of its tree.

Resident memory (RSS) counts a page shared by N processes N times; the
proportional set size (PSS) counts 1/N of it in each, so the PSS of every
process of a server, summed, is what the server costs the machine, and what
copy-on-write sharing after a fork (PreloadApp, gc.freeze) saves shows in it.
Read from /proc/PID/smaps_rollup (Linux 4.14+), which the kernel sums for
us; the same user as the server, or root, may read it.

    python -m mpmserver.bench.pss PID [PID...]   # each tree's total, per process with -v

``tree_memory(pid)`` is what `mpmserver bench --app` reports beside its
throughput; benchmarks/compare.py uses it for every peer.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

__all__ = ["Memory", "process_tree", "read_rollup", "tree_memory", "format_memory"]

# The smaps_rollup fields summed, in kB, as named there.
_FIELDS = {"Rss": "rss", "Pss": "pss", "Pss_Anon": "pss_anon", "Pss_File": "pss_file",
           "Pss_Shmem": "pss_shmem", "Private_Clean": "private", "Private_Dirty": "private",
           "Swap": "swap"}


@dataclass
class Memory:
    """Bytes, summed over ``pids`` (pss_anon/file/shmem: 0 on kernels before 5.x that lack them)."""

    pids: list[int] = field(default_factory=list)
    rss: int = 0
    pss: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0
    private: int = 0  # USS: pages only this process maps
    swap: int = 0

    def add(self, other: "Memory") -> None:
        self.pids += other.pids
        for name in ("rss", "pss", "pss_anon", "pss_file", "pss_shmem", "private", "swap"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        return {"processes": len(self.pids), "rss": self.rss, "pss": self.pss, "pss_anon": self.pss_anon,
                "pss_file": self.pss_file, "pss_shmem": self.pss_shmem, "private": self.private,
                "swap": self.swap}


def parse_rollup(text: str, pid: int = 0) -> Memory:
    """A Memory from the text of a smaps_rollup (pure: tested on samples)."""
    mem = Memory(pids=[pid])
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        attr = _FIELDS.get(name)
        if not sep or attr is None:
            continue
        parts = rest.split()
        if parts and parts[0].isdigit():
            setattr(mem, attr, getattr(mem, attr) + int(parts[0]) * 1024)
    return mem


def read_rollup(pid: int) -> Memory | None:
    """One process's figures; None if it is gone (or is a zombie, which maps nothing)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return parse_rollup(text, pid) if text.strip() else None


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it, parents first."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
    return out


def tree_memory(root: int) -> Memory:
    """Every process of the tree rooted at ``root``, summed."""
    total = Memory()
    for pid in process_tree(root):
        mem = read_rollup(pid)
        if mem is not None:
            total.add(mem)
    return total


def format_memory(mem: Memory) -> str:
    mib = 1 << 20
    return (f"PSS {mem.pss / mib:.1f} MiB in {len(mem.pids)} processes (RSS {mem.rss / mib:.1f} MiB, "
            f"private {mem.private / mib:.1f} MiB; PSS anon {mem.pss_anon / mib:.1f}, "
            f"file {mem.pss_file / mib:.1f}, shmem {mem.pss_shmem / mib:.1f} MiB)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mpmserver.bench.pss",
                                description="Total PSS of each process tree (a server's master and children).")
    p.add_argument("pids", nargs="+", type=int, metavar="PID")
    p.add_argument("-v", "--verbose", action="store_true", help="also one line per process")
    args = p.parse_args(argv)
    status = 0
    for root in args.pids:
        total = tree_memory(root)
        if not total.pids:
            print(f"{root}: no such process, or its memory is not readable", file=sys.stderr)
            status = 1
            continue
        print(f"{root}: {format_memory(total)}")
        if args.verbose:
            for pid in total.pids:
                mem = read_rollup(pid)
                if mem is not None:
                    print(f"  {pid}: {format_memory(mem)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
