"""Admission as a pure function: counts in, a yes or no out (no socket, no thread)."""

import pytest

from mpmserver import config as configmod
from mpmserver.child.admission import Limits
from mpmserver.child import admission


def limits(**kw):
    base = dict(max_open=100, max_connections=0, factor=1.0, balance=True, slack=2)
    base.update(kw)
    return Limits(**base)


def admits(lim, **kw):
    args = dict(stopping=False, busy_connections=0, accepted=0, idle_workers=4, waiting=0)
    args.update(kw)
    return admission.admits(lim, **args)


def test_max_connections_per_child_jitter_spreads_the_limits():
    cfg = configmod.from_kwargs(threads_per_child=1, max_connections_per_child=100,
                                max_connections_per_child_jitter=50)
    found = [admission.limits_from_config(cfg, siblings=True, fd_soft_limit=None)[0].max_connections
             for _ in range(30)]
    assert all(100 <= n <= 150 for n in found), found
    # Children do not all recycle at the same connection count.
    assert len(set(found)) > 5


def test_no_jitter_means_the_exact_limit():
    cfg = configmod.from_kwargs(threads_per_child=1, max_connections_per_child=100)
    lim, warning = admission.limits_from_config(cfg, siblings=False, fd_soft_limit=None)
    assert lim.max_connections == 100 and warning is None
    assert not lim.balance


def test_accepts_only_while_a_worker_is_free_for_the_request():
    lim = limits()
    assert admits(lim, idle_workers=1, waiting=0)
    assert not admits(lim, idle_workers=1, waiting=1)
    assert not admits(lim, idle_workers=0, waiting=0)
    assert admits(lim, idle_workers=4, waiting=3)


def test_async_request_worker_factor_keeps_idle_workers_for_parked_clients():
    lim = limits(factor=0.5)
    assert admits(lim, idle_workers=4, waiting=1)
    assert not admits(lim, idle_workers=4, waiting=2)


def test_stopping_and_limits_refuse():
    lim = limits(max_open=10, max_connections=5)
    assert not admits(lim, stopping=True)
    assert not admits(lim, busy_connections=10)
    assert admits(lim, busy_connections=9)
    assert not admits(lim, accepted=5)
    assert admission.must_recycle(lim, 5) and not admission.must_recycle(lim, 4)
    assert not admission.must_recycle(limits(max_connections=0), 10**6)


def test_prefers_a_sibling_only_with_clearly_fewer_connections():
    lim = limits(slack=2)
    assert not admission.prefers_sibling(lim, 10, None)  # no accepting sibling
    assert not admission.prefers_sibling(lim, 10, 8)
    assert admission.prefers_sibling(lim, 11, 8)


def test_a_crowded_child_sends_clients_away_one_at_a_time():
    pace = admission.SendAwayPace(interval=0.1)
    assert pace.due(5.0)  # nothing sent yet
    pace.sent(5.0)
    # Every connection of the child asks within moments: only the first goes.
    assert not pace.due(5.0) and not pace.due(5.099)
    assert pace.due(5.1)
    assert admission.SendAwayPace().interval == admission.SEND_AWAY_INTERVAL


@pytest.mark.parametrize("soft,expected,warns", [(None, 5000, False), (10_000, 5000, False),
                                                  (1024, 960, True), (10, 1, True)])
def test_max_open_is_bounded_by_the_descriptor_limit(soft, expected, warns):
    value, warning = admission.bound_by_fd_limit(5000, soft)
    assert value == expected
    assert (warning is not None) == warns
    if warns:
        assert "ulimit -Hn" in warning


def test_max_requests_per_child_counts_requests_with_the_same_jitter():
    from mpmserver.child.admission import must_recycle_on_requests

    cfg = configmod.from_kwargs(threads_per_child=1, max_requests_per_child=100, max_connections_per_child=10,
                                max_connections_per_child_jitter=50)
    limits, _ = admission.limits_from_config(cfg, siblings=False, fd_soft_limit=None, randint=lambda a, b: b)
    assert (limits.max_requests, limits.max_connections) == (150, 60)
    assert not must_recycle_on_requests(limits, 149) and must_recycle_on_requests(limits, 150)
    off, _ = admission.limits_from_config(configmod.from_kwargs(threads_per_child=1), siblings=False,
                                          fd_soft_limit=None)
    assert off.max_requests == 0 and not must_recycle_on_requests(off, 10**9)


# -- fair waiting (issue 23 item 2) --------------------------------------------------


def fair(lim, waited, **kw):
    args = dict(stopping=False, busy_connections=0, accepted=0, waiting=3)
    args.update(kw)
    return admission.fair_turn(lim, waited=waited, **args)


def test_a_waiting_connection_gets_its_turn_after_fair_wait_though_no_worker_is_idle():
    lim = limits()
    # No idle worker: admission leaves the connection to a sibling...
    assert not admits(lim, idle_workers=0, waiting=5)
    # ...for FAIR_WAIT; then it is accepted and queues with the kept-alive requests.
    assert not fair(lim, admission.FAIR_WAIT / 2)
    assert fair(lim, admission.FAIR_WAIT)
    assert admission.FAIR_WAIT <= 0.002, "a fair wait longer than a request's own wait in the queue"


def test_no_fair_turn_while_nothing_waits_in_the_hand_off():
    # Every worker busy but nothing queued: one goes idle soon and admission
    # takes the connection; the kernel's queue, shared by the children, is fairer.
    assert not fair(limits(), 10.0, waiting=0)
    assert fair(limits(), 10.0, waiting=1)


def test_no_fair_turn_for_a_child_closed_to_new_connections():
    assert not fair(limits(), 10.0, stopping=True)
    assert not fair(limits(max_open=10), 10.0, busy_connections=10)
    assert not fair(limits(max_connections=50), 10.0, accepted=50)
    # Parked connections do not count against MaxOpenConnectionsPerChild.
    assert fair(limits(max_open=10), 10.0, busy_connections=9)


def test_closed_to_new_is_what_admits_refuses_whatever_the_workers():
    lim = limits(max_open=10, max_connections=50)
    for kw in (dict(stopping=True), dict(busy_connections=10), dict(accepted=50)):
        full = dict(stopping=False, busy_connections=0, accepted=0)
        full.update(kw)
        assert admission.closed_to_new(lim, **full)
        assert not admits(lim, idle_workers=100, waiting=0, **kw)
    assert not admission.closed_to_new(lim, stopping=False, busy_connections=9, accepted=49)
