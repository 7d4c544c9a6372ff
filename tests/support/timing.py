"""Wall-clock figures measured by pass/fail tests: said, not asserted.

A pass/fail test on a shared machine asserts the behaviour (who answered,
what was refused, that nothing queued behind a slow client); how fast it
happened is a figure. `timing()` records it as the test's "timing" property:
tests/conftest.py prints each in the run's summary, and
benchmarks/timings.py runs these tests several times and compares the
medians with the targets the tests once asserted.
"""

from __future__ import annotations

import json


def timing(record_property, figure: str, value: float, unit: str, target: float) -> None:
    """Record ``figure`` = ``value`` ``unit``; ``target``: the most it should be."""
    record_property("timing", json.dumps({"figure": figure, "value": round(value, 4), "unit": unit,
                                          "target": target}))


def describe(recorded: str) -> str:
    t = json.loads(recorded)
    return f"{t['figure']}: {t['value']:g} {t['unit']} (target under {t['target']:g} {t['unit']})"
