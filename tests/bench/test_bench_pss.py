"""The PSS reader (mpmserver/bench/pss.py): a process tree's memory, as the machine pays for it."""

import os
import subprocess
import sys

from mpmserver.bench.pss import parse_rollup, process_tree, read_rollup, tree_memory

ROLLUP = """55d0c0a2b000-7ffc8d5f1000 ---p 00000000 00:00 0                          [rollup]
Rss:               37612 kB
Pss:               10374 kB
Pss_Dirty:         10094 kB
Pss_Anon:          10084 kB
Pss_File:            287 kB
Pss_Shmem:             2 kB
Shared_Clean:       5000 kB
Private_Clean:        20 kB
Private_Dirty:      4568 kB
Swap:                  0 kB
"""


def test_rollup_fields_in_bytes():
    m = parse_rollup(ROLLUP, 42)
    assert m.pids == [42]
    assert (m.rss, m.pss, m.pss_anon, m.pss_file, m.pss_shmem) == (
        37612 * 1024, 10374 * 1024, 10084 * 1024, 287 * 1024, 2 * 1024)
    assert m.private == (20 + 4568) * 1024  # clean and dirty: pages no other process maps


def test_a_forked_tree_is_found_and_its_shared_pages_are_counted_once():
    # A parent holding 40 MB, and two children sharing it copy-on-write: the
    # RSS counts it three times, the PSS once.
    code = ("import os, time, sys\n"
            "data = bytearray(b'x' * (40 << 20))\n"
            "for _ in range(2):\n"
            "    if os.fork() == 0:\n        time.sleep(30); os._exit(0)\n"
            "print('ready', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        tree = process_tree(proc.pid)
        assert tree[0] == proc.pid and len(tree) == 3
        total = tree_memory(proc.pid)
        assert sorted(total.pids) == sorted(tree)
        assert total.rss > 3 * (40 << 20)
        assert 40 << 20 < total.pss < 40 * (1 << 20) + (40 << 20)  # the shared 40 MB once, plus three interpreters
    finally:
        for pid in process_tree(proc.pid)[1:]:
            os.kill(pid, 9)
        proc.kill()
        proc.wait(10)
    assert read_rollup(proc.pid) is None  # gone
