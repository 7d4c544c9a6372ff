"""The open-loop scheduler: even spacing, and latencies that do not hide stalls."""

import pytest

from mpmserver.bench.histogram import Histogram
from mpmserver.bench.schedule import NS, OpenLoopSchedule, connection_schedules


def test_connections_together_send_evenly_spaced_requests():
    scheds = connection_schedules(1000.0, 4, start_ns=0)
    times = sorted(s.advance() for s in scheds for _ in range(250))
    gaps = {b - a for a, b in zip(times, times[1:])}
    assert gaps == {1_000_000}  # one request per ms, no bursts
    assert times[0] == 0 and times[-1] == 999_000_000


def test_split_across_processes_matches_single_process():
    whole = [s.advance() for s in connection_schedules(300.0, 6, start_ns=5)]
    parts = [s.advance() for s in connection_schedules(300.0, 6, 5, first=0, count=2)]
    parts += [s.advance() for s in connection_schedules(300.0, 6, 5, first=2, count=4)]
    assert parts == whole


def test_long_schedules_do_not_drift():
    s = OpenLoopSchedule(3.0, start_ns=0)  # 333,333,333.33 ns: not an integer
    for _ in range(3 * 3600):
        t = s.advance()
    assert abs(t - (3 * 3600 - 1) * NS / 3.0) < 2


def test_rejects_nonpositive_rate():
    with pytest.raises(ValueError):
        OpenLoopSchedule(0, 0)


def simulate(schedule, n, service_ns, stall_at_ns, stall_ns):
    """One connection, one request in flight, a server that answers in
    service_ns except that it is frozen during [stall_at, stall_at+stall)."""
    free_at = 0
    latencies = []
    for _ in range(n):
        intended = schedule.advance()
        send = max(intended, free_at)
        start = send
        if stall_at_ns <= start < stall_at_ns + stall_ns:
            start = stall_at_ns + stall_ns
        done = start + service_ns
        free_at = done
        latencies.append(done - intended)
    return latencies


def test_open_loop_latencies_show_a_stall_to_every_request_it_delayed():
    # 100 req/s for 10 s, 1 ms service, a 1 s stall at t=5 s: 1% of the time.
    lat = simulate(OpenLoopSchedule(100.0, 0), 1000, 1_000_000, 5 * NS, NS)
    h = Histogram()
    for v in lat:
        h.record(v // 1000)
    # About 100 requests were meant to go out during the stall and each waited;
    # the 99th percentile must show hundreds of ms, not the 1 ms service time.
    assert sum(v > 100_000_000 for v in lat) >= 80
    assert h.percentile(99) > 500_000
    assert h.percentile(50) < 2_000


def test_closed_loop_view_of_the_same_stall_hides_it():
    # The contrast that motivates open loop: measured from the actual send
    # time, only one request sees the stall.
    free_at, lat = 0, []
    for _ in range(10_000):  # 1 ms each: runs past the stall at 5 s
        send = free_at
        start = 6 * NS if 5 * NS <= send < 6 * NS else send
        free_at = start + 1_000_000
        lat.append(free_at - send)
    assert sum(v > 100_000_000 for v in lat) == 1
