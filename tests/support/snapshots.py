"""A hand-built scoreboard snapshot for the status and metrics renderers."""

from mpmserver.scoreboard import (
    SERVER_BUSY_KEEPALIVE,
    SERVER_BUSY_WRITE,
    SERVER_DEAD,
    SERVER_GRACEFUL,
    SERVER_READY,
    RESPONSE_CODES,
    ProcessSnapshot,
    ScoreboardSnapshot,
    WorkerSnapshot,
)

NOW = 1_800_000_000.0


def _codes(counts: dict[str, int]) -> tuple[int, ...]:
    """A slot's responses by code, in the scoreboard's order (RESPONSE_CODES, then other)."""
    names = [*map(str, RESPONSE_CODES), "other"]
    return tuple(counts.get(name, 0) for name in names)


def W(status=SERVER_DEAD, acc=0, nbytes=0, total_duration=0.0, request="", client="", pid=0, gen=1,
      my_acc=None, my_bytes=None, start=0.0, stop=0.0, last_used=0.0):
    return WorkerSnapshot(
        status=status, pid=pid, tid=0, generation=gen, access_count=acc, bytes_served=nbytes,
        my_access_count=acc if my_acc is None else my_acc,
        my_bytes_served=nbytes if my_bytes is None else my_bytes, conn_count=0, conn_bytes=0,
        start_time=start, stop_time=stop, last_used=last_used, duration=stop - start,
        request=request, client=client, total_duration=total_duration)


def hand_built() -> ScoreboardSnapshot:
    """3 slots x 4 threads: slot 0 current generation, slot 1 stopping, slot 2 free."""
    p0 = ProcessSnapshot(slot=0, pid=100, generation=1, quiescing=False, not_accepting=False,
                         connections=5, keep_alive=2, workers=(
                             W(SERVER_READY, acc=10, nbytes=10240, total_duration=1.0, pid=100),
                             W(SERVER_BUSY_WRITE, acc=5, nbytes=2048, total_duration=0.5, pid=100,
                               request="GET /busy HTTP/1.1", client="192.0.2.1:4000",
                               start=NOW - 2, stop=NOW - 2.25, last_used=NOW - 2),
                             W(SERVER_BUSY_KEEPALIVE, acc=1, nbytes=0, pid=100),
                             W(SERVER_READY, pid=100)),
                         lingering_close=1, rss=48 << 20, responses=_codes({"200": 14, "404": 1, "other": 1}))
    p1 = ProcessSnapshot(slot=1, pid=101, generation=0, quiescing=True, not_accepting=True,
                         connections=1, keep_alive=0, workers=(
                             W(SERVER_GRACEFUL, acc=4, nbytes=1024, total_duration=0.5, pid=101, gen=0),
                             W(), W(), W()), rss=52 << 20, responses=_codes({"200": 3, "408": 1}))
    # a free slot keeps the counters of the child that used it
    p2 = ProcessSnapshot(slot=2, pid=0, generation=0, quiescing=False, not_accepting=False,
                         connections=0, keep_alive=0, workers=(W(acc=20, nbytes=1024 * 1024, gen=0),
                                                               W(), W(), W()),
                         rss=0, responses=_codes({"200": 19, "500": 1}))
    return ScoreboardSnapshot(server_limit=3, thread_limit=4, generation=1, restart_time=NOW - 100,
                              master_pid=99, processes=(p0, p1, p2))
