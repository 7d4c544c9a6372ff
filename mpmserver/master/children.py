"""The master's children as processes: fork one into a scoreboard slot, reap
them, ask one or all to stop, signal one, retire an old generation.

Mechanism only: when to fork, stop or kill is the policy's (maintenance.py,
retirement.py, request_timeout.py, stopping.py), carried out by master.py.
The table here is the one truth about which pids are the master's children:
a pid is signalled only while it is in it (a reaped pid may be someone
else's by now).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ..child.child import StartReport
from ..scoreboard import (
    EXIT_CHILDFATAL,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_GRACEFUL,
)
from .actions import Log, SignalChild
from .retirement import retire_generation
from .stopping import StopState, stop_step

if TYPE_CHECKING:
    from ..logs import ErrorLog
    from ..scoreboard import ProcessSnapshot, Scoreboard

__all__ = ["ChildInfo", "Children", "run_forked"]

# Worker states that mean "a request is running" (turned into G when its child stops).
GRACEFUL_FROM = frozenset((SERVER_BUSY_READ, SERVER_BUSY_WRITE))


@dataclass
class ChildInfo:
    pid: int
    slot: int
    generation: int
    stopping: bool = False  # the master told it to stop: its exit is expected
    # The read end of the pipe the child reports a failed start on (-1: closed).
    report_r: int = -1


class Children:
    """The live children by pid, and the slots forked into that the child
    has not yet shown itself in (``pending``)."""

    def __init__(self, error_log: ErrorLog, be_child: Callable[[int, StartReport], NoReturn]) -> None:
        self.error_log = error_log
        # Runs in the forked process with its slot and the write end of its
        # report pipe; never returns.
        self._be_child = be_child
        self.scoreboard: Scoreboard | None = None  # set once the master has created it
        self.by_pid: dict[int, ChildInfo] = {}
        self.pending: set[int] = set()
        self.stop: StopState | None = None  # set while every child is being stopped
        self._stop_started = 0.0

    def __len__(self) -> int:
        return len(self.by_pid)

    def __iter__(self) -> Iterator[ChildInfo]:
        return iter(list(self.by_pid.values()))  # a copy: stopping may reap meanwhile

    def slot_free(self, slot: int) -> bool:
        return all(info.slot != slot for info in self.by_pid.values())

    def spawn(self, slot: int, generation: int, draining: bool) -> int:
        """Fork a child into ``slot``; its pid, or 0 if fork failed."""
        sys.stdout.flush()  # else the child would write the master's buffered output again
        sys.stderr.flush()
        try:
            report_r, report_w = os.pipe()
            pid = os.fork()
        except OSError as exc:
            # Apache sleeps 10 s; we let the next maintenance cycle retry.
            self.error_log.error(f"fork: unable to fork new process: {exc}")
            return 0
        if pid == 0:
            os.close(report_r)
            self.close_reports()
            self._be_child(slot, StartReport(report_w))
        os.close(report_w)
        self.scoreboard.count_spawn()
        self.scoreboard.process(slot).spawned(pid, generation, draining=draining)
        self.by_pid[pid] = ChildInfo(pid, slot, generation, report_r=report_r)
        self.pending.add(slot)
        return pid

    def close_reports(self) -> None:
        """In a forked process: the other children's report pipes are not its own."""
        for info in self.by_pid.values():
            if info.report_r >= 0:
                os.close(info.report_r)
                info.report_r = -1

    @staticmethod
    def take_report(info: ChildInfo) -> str:
        """What a reaped child wrote on its report pipe (why it could not
        start), and the pipe closed; "" if nothing."""
        if info.report_r < 0:
            return ""
        return read_report(info.report_r)

    def probe(self, main: Callable[[StartReport], int], timeout: float,
              give_up: Callable[[], bool] = lambda: False) -> tuple[bool, str]:
        """Run ``main`` (given the report pipe's write end) in a forked
        process in no slot, and wait for it, at most ``timeout`` seconds or
        until ``give_up()`` (a stop was asked for meanwhile): (it exited 0,
        what it reported). The master's loop waits meanwhile; the children
        serve on."""
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            self.close_reports()
            report = StartReport(report_w)
            run_forked(-1, self.error_log, lambda: main(report), report)
        os.close(report_w)
        deadline = time.monotonic() + timeout
        while (status := _exit_status(pid)) is None:
            if time.monotonic() > deadline or give_up():
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                why = "given up" if give_up() else f"not done within {timeout:g} s"
                return False, f"{read_report(report_r)}\n{why}".strip()
            time.sleep(0.02)
        report = read_report(report_r)
        if os.WIFSIGNALED(status):
            return False, f"{report}\nkilled by signal {os.WTERMSIG(status)}".strip()
        return os.WEXITSTATUS(status) == 0, report

    def reaped(self) -> Iterator[tuple[int, int, ChildInfo | None]]:
        """(pid, status, its ChildInfo or None) of every process that has exited.

        waitpid(-1) reaps every exited process, not only our children: as
        PID 1 (a container) the orphans re-parented to us are reaped here
        (info None) and ignored, so they never linger as zombies."""
        for pid, status in _waited():
            yield pid, status, self.by_pid.pop(pid, None)

    def stop_one(self, pid: int, sig: int, threads: int) -> None:
        """Ask this child to stop (USR1: after its requests; WINCH: a graceful stop)."""
        info = self.by_pid.get(pid)
        if info is None:
            return
        info.stopping = True
        self.scoreboard.process(info.slot).set_quiescing(True)
        self.mark_graceful(info.slot, threads)
        self.signal(pid, sig)

    def begin_stop(self, stop: StopState) -> None:
        """Stop every child on stopping.py's schedule (the first TERMs of a
        stop now go at once); every exit from here on is expected."""
        self.stop = stop
        self._stop_started = time.monotonic()
        for info in self.by_pid.values():
            info.stopping = True
        self.stop_step()

    def stop_step(self) -> bool:
        """Advance a stop; True when every child is gone."""
        if not self.by_pid:
            return True
        for action in stop_step(self.stop, time.monotonic() - self._stop_started, list(self.by_pid)):
            if isinstance(action, SignalChild):
                self.signal(action.pid, action.signal)
            elif isinstance(action, Log):
                self.error_log.log(action.level, action.message)
        return False

    def retiring(self, generation: int) -> bool:
        """Children of an older generation not yet told to stop."""
        return any(info.generation < generation and not info.stopping for info in self.by_pid.values())

    def retire(self, generation: int, threads: int) -> None:
        """Stop the old generation's children when retirement.py says (once
        the new generation serves, or to make room for it)."""
        live = [(i.pid, i.slot, i.generation) for i in self.by_pid.values() if not i.stopping]
        stopping = len(self.by_pid) - len(live)
        for action in retire_generation(self.scoreboard.snapshot(), threads, generation, live,
                                        stopping=stopping):
            self.stop_one(action.pid, signal.SIGUSR1, threads)

    def signal(self, pid: int, sig: int) -> None:
        # Only a child not yet reaped: a reaped pid may be someone else's now.
        if pid in self.by_pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def mark_graceful(self, slot: int, threads: int) -> None:
        """Requests in flight in a child told to stop show G ("Gracefully
        finishing") on the status page, as in Apache. The worker writes its
        next state over it when the request ends; a one-byte write cannot tear."""
        sb = self.scoreboard
        proc = sb.snapshot().processes[slot]
        for t, w in enumerate(proc.workers[:threads]):
            if w.status in GRACEFUL_FROM:
                sb.worker(slot, t).set_status(SERVER_GRACEFUL)

    def clear_slot(self, slot: int) -> None:
        sb = self.scoreboard
        sb.process(slot).clear()
        # The child's threads cannot mark themselves dead any more.
        for t in range(sb.thread_limit):
            sb.worker(slot, t).thread_exited()

    def newly_started(self, procs: list[ProcessSnapshot], threads: int) -> Iterator[ProcessSnapshot]:
        """The pending children that have started serving since the last call."""
        for proc in procs:
            if proc.slot in self.pending and proc.has_started(threads):
                self.pending.discard(proc.slot)
                yield proc


def read_report(fd: int) -> str:
    """Read what is in the pipe ``fd`` without waiting (its writer has
    exited, or a helper it forked holds the pipe open), then close it."""
    chunks = []
    try:
        os.set_blocking(fd, False)
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:  # BlockingIOError: nothing more for now
        pass
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace").rstrip("\n")


def run_forked(slot: int, error_log: ErrorLog, main: Callable[[], int],
               report: StartReport | None = None) -> NoReturn:
    """In the forked process: run ``main`` and exit with its code; never
    return into the master's code, whatever happens."""
    # An exception escaping main means the child could not run: fatal, so
    # the master stops instead of forking it again and again.
    code = EXIT_CHILDFATAL
    try:
        code = main()
    except BaseException as exc:  # noqa: BLE001
        try:
            if report is None or not report.send(f"child {slot}: crashed", exc):
                error_log.exception(f"child {slot}: crashed", exc)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)


def _waited() -> Iterator[tuple[int, int]]:
    """(pid, status) of every child that has exited, without waiting."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return
        yield pid, status


def _exit_status(pid: int) -> int | None:
    """The wait status of this process if it has exited, without waiting."""
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except InterruptedError:
            continue
        return status if done else None
