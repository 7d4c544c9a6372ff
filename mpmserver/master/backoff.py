"""Back-off for children that cannot start while others serve (pure).

A replacement child that cannot import the app (a broken file saved, a
dependency gone) must neither stop a server that still serves nor turn the
master into a fork storm. After such a failure no child is forked for 1 s,
then one child is tried; each further failure doubles the wait, up to 60 s.
The first child that starts ends the back-off. The master owns one Backoff
(in MaintenanceState) and gives it the monotonic clock; nothing here sleeps,
forks or logs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIRST_DELAY", "MAX_DELAY", "Backoff"]

FIRST_DELAY = 1.0
MAX_DELAY = 60.0


@dataclass
class Backoff:
    """Where a run of failed starts stands: ``failures`` in a row (0: none,
    no back-off), the delay of the last step, and when a child may be tried."""

    failures: int = 0
    delay: float = 0.0
    retry_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.failures > 0

    def failed(self, now: float) -> tuple[float, bool]:
        """A child failed to start at ``now``: (seconds until the next try,
        whether this step is new and so worth a log line: each doubling is
        logged once, and the 60 s step only the first time it is reached)."""
        self.failures += 1
        delay = min(FIRST_DELAY * 2 ** (self.failures - 1), MAX_DELAY)
        new_step = delay != self.delay
        self.delay = delay
        self.retry_at = now + delay
        return delay, new_step

    def started(self) -> int:
        """A child started: the back-off is over; how many failures it lasted."""
        failures, self.failures, self.delay, self.retry_at = self.failures, 0, 0.0, 0.0
        return failures

    def spawn_budget(self, now: float, starting: bool) -> int | None:
        """How many children may be forked now: None (no limit: not backing
        off), 0 (wait, or a child tried is still starting) or 1 (try one).
        ``starting``: a child forked earlier has not started yet."""
        if not self.active:
            return None
        if now < self.retry_at or starting:
            return 0
        return 1

    def wake_at(self) -> float | None:
        """When the master's loop should wake to try a child, if backing off."""
        return self.retry_at if self.active else None
