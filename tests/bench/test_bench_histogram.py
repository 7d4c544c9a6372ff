"""The latency histogram: bounded relative error, percentiles, merging."""

import random

import pytest

from mpmserver.bench.histogram import (
    MAX_VALUE,
    RELATIVE_ERROR,
    Histogram,
    bucket_bounds,
    bucket_index,
)


def exact_percentile(sorted_values, p):
    import math
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def test_every_value_lands_in_a_bucket_that_contains_it():
    rng = random.Random(1)
    values = list(range(0, 5000)) + [rng.randrange(1 << k) for k in range(1, 41) for _ in range(50)]
    for v in values:
        low, high = bucket_bounds(bucket_index(v))
        assert low <= v <= high
        assert (high - low) <= max(0, low * 2 * RELATIVE_ERROR)


def test_bucket_indexes_are_contiguous_and_monotonic():
    prev_high = -1
    for i in range(bucket_index(1 << 20) + 1):
        low, high = bucket_bounds(i)
        assert low == prev_high + 1
        prev_high = high


@pytest.mark.parametrize("name, draw", [
    ("uniform", lambda r: r.randrange(1, 100_000)),
    ("exponential", lambda r: int(r.expovariate(1 / 2_000)) + 1),
    ("lognormal", lambda r: int(r.lognormvariate(7, 1.5)) + 1),
])
def test_percentiles_of_known_distributions_within_one_percent(name, draw):
    rng = random.Random(42)
    values = [draw(rng) for _ in range(50_000)]
    h = Histogram()
    for v in values:
        h.record(v)
    values.sort()
    for p in (50, 90, 99, 99.9):
        exact = exact_percentile(values, p)
        got = h.percentile(p)
        assert abs(got - exact) <= max(1, exact * 0.01), (name, p, got, exact)
    assert h.percentile(100) == values[-1] == h.max
    assert h.percentile(0) == values[0] == h.min
    assert h.total == len(values)
    assert h.mean() == pytest.approx(sum(values) / len(values))


def test_exponential_median_matches_theory():
    # The median of an exponential distribution with mean m is m*ln 2.
    rng = random.Random(7)
    h = Histogram()
    for _ in range(100_000):
        h.record(int(rng.expovariate(1 / 10_000)))
    assert h.percentile(50) == pytest.approx(10_000 * 0.6931, rel=0.02)


def test_bimodal_tail_is_not_smoothed_away():
    h = Histogram()
    for _ in range(990):
        h.record(1_000)      # 1 ms
    for _ in range(10):
        h.record(500_000)    # 500 ms stalls: 1%
    assert h.percentile(99) == pytest.approx(1_000, rel=0.01)
    assert h.percentile(99.9) == pytest.approx(500_000, rel=0.01)


def test_merge_equals_recording_everything_in_one():
    rng = random.Random(3)
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(20_000):
        v = int(rng.paretovariate(1.5) * 100)
        (a if i % 3 else b).record(v)
        both.record(v)
    a.merge(b)
    assert a.counts == both.counts
    assert (a.total, a.min, a.max, a.sum) == (both.total, both.min, both.max, both.sum)


def test_round_trip_through_dict_for_other_processes():
    import json
    h = Histogram()
    for v in (5, 300, 70_000, 9_000_000):
        h.record(v)
    back = Histogram.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.counts == h.counts and back.percentile(75) == h.percentile(75)


def test_empty_and_out_of_range_values():
    h = Histogram()
    assert h.percentile(99) == 0 and h.mean() == 0
    h.record(-5)            # a clock stepping back is clamped, not a crash
    h.record(MAX_VALUE * 4)
    assert h.min == 0 and h.max == MAX_VALUE
