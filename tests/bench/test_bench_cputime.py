"""mpmserver/bench/cputime.py: a server's CPU time from /proc (compare.py's CPU per request)."""

import os
import subprocess
import sys

from mpmserver.bench.cputime import parse_stat, session_cpu_seconds

# A command name with a space and a ')' in it, as a process may call itself.
STAT = ("4242 (mpmserver: ch) ld) S 4200 4200 4200 0 -1 4194560 1170 0 0 0 "
        "250 31 0 0 20 0 6 0 12345 123456789 4567 18446744073709551615")


def test_session_and_cpu_ticks_after_the_command_name():
    assert parse_stat(STAT) == (4200, 250 + 31)


def test_a_session_s_processes_are_summed():
    """A child that burns CPU in a new session: its time shows there, not in ours."""
    code = "import time\nt = time.process_time() + 0.3\nwhile time.process_time() < t: pass\nprint('done', flush=True)\n" \
           "import sys; sys.stdin.read()"
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         start_new_session=True, text=True)
    try:
        assert p.stdout.readline() == "done\n"
        assert session_cpu_seconds(p.pid) >= 0.25
        assert session_cpu_seconds(os.getsid(0)) < session_cpu_seconds(os.getsid(0)) + 1  # readable
    finally:
        p.stdin.close()
        p.wait(10)
    assert session_cpu_seconds(p.pid) == 0
