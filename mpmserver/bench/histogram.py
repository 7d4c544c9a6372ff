"""A log-linear latency histogram with bounded relative error (HdrHistogram's idea).

Values are integers (the generator records microseconds). Values below 256 get
a bucket each; above that, every power of two is split into 128 equal
buckets, so a bucket is never wider than 1/128 of its lower bound and the
midpoint we report is within 0.4% of any value recorded into it. Recording is
one bit_length, one shift and one list increment; histograms from several
generator processes merge by adding counts.
"""

from __future__ import annotations

import math
from typing import Iterable

SUB_BITS = 7
_SUB = 1 << SUB_BITS            # buckets per power of two above the linear part
_LINEAR = _SUB << 1             # values 0.._LINEAR-1 are exact
_SHIFT = SUB_BITS + 1
# 2**40 us is 12 days: enough for any latency; bigger values are clamped.
MAX_VALUE = (1 << 40) - 1
N_BUCKETS = ((40 - _SHIFT) << SUB_BITS) + (MAX_VALUE >> (40 - _SHIFT)) + 1

RELATIVE_ERROR = 1 / (2 * _SUB)  # half a bucket over its lower bound


def bucket_index(value: int) -> int:
    """Index of the bucket holding a non-negative integer value."""
    e = value.bit_length() - _SHIFT
    if e <= 0:
        return value
    return (e << SUB_BITS) + (value >> e)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Lowest and highest value that fall into bucket `index`."""
    if index < _LINEAR:
        return index, index
    e = (index >> SUB_BITS) - 1
    low = (index - (e << SUB_BITS)) << e
    return low, low + (1 << e) - 1


class Histogram:
    """Counts of integer values; exact min, max and sum, approximate percentiles."""

    __slots__ = ("counts", "total", "min", "max", "sum")

    def __init__(self) -> None:
        self.counts = [0] * N_BUCKETS
        self.total = 0
        self.min = MAX_VALUE
        self.max = 0
        self.sum = 0

    def record(self, value: int) -> None:
        if value < 0:
            value = 0  # a clock step backwards must not crash a run
        elif value > MAX_VALUE:
            value = MAX_VALUE
        e = value.bit_length() - _SHIFT
        self.counts[value if e <= 0 else (e << SUB_BITS) + (value >> e)] += 1
        self.total += 1
        self.sum += value
        if value > self.max:
            self.max = value
        if value < self.min:
            self.min = value

    def merge(self, other: "Histogram") -> None:
        if not other.total:
            return
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += c
        self.total += other.total
        self.sum += other.sum
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)

    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0

    def percentile(self, p: float) -> int:
        """The value at percentile p (0..100): the p-th percent of recorded values
        are at or below it, give or take the bucket's relative error."""
        if not self.total:
            return 0
        if p <= 0:
            return self.min
        if p >= 100:
            return self.max
        rank = max(1, math.ceil(p / 100.0 * self.total))
        seen = 0
        for i, c in enumerate(self.counts):
            if c:
                seen += c
                if seen >= rank:
                    low, high = bucket_bounds(i)
                    return min(max((low + high) // 2, self.min), self.max)
        return self.max

    def percentiles(self, ps: Iterable[float]) -> dict[float, int]:
        return {p: self.percentile(p) for p in ps}

    def to_dict(self) -> dict:
        """A compact, JSON- and pickle-friendly form (sparse counts)."""
        return {
            "counts": {i: c for i, c in enumerate(self.counts) if c},
            "total": self.total, "min": self.min, "max": self.max, "sum": self.sum,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Histogram":
        h = cls()
        for i, c in d["counts"].items():
            h.counts[int(i)] = c
        h.total, h.min, h.max, h.sum = d["total"], d["min"], d["max"], d["sum"]
        return h
