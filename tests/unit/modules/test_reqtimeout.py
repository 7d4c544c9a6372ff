"""RequestReadTimeout (mod_reqtimeout): the pure rules, then a real server
where a head or a body that arrives slower than MinRate gets 408, in the
event loop and in a worker."""

from __future__ import annotations

import pytest

from mpmserver.modules import reqtimeout
from mpmserver.modules.reqtimeout import ReadTimeouts, Stage, deadline, parse


def test_apaches_default_and_its_text():
    assert reqtimeout.DEFAULT == ReadTimeouts(Stage(20, 40, 500), Stage(20, 0, 500))
    assert reqtimeout.format_spec(reqtimeout.DEFAULT) == "header=20-40,MinRate=500 body=20,MinRate=500"
    assert parse("header=0 body=0") == ReadTimeouts()
    assert parse("BODY=10") == ReadTimeouts(Stage(), Stage(10, 0, 0))


@pytest.mark.parametrize("bad", ["head=5", "header=5-3,MinRate=1", "header=5-10", "body=x", "header=5,MinRate=-1"])
def test_bad_values_say_how_to_write_them(bad):
    with pytest.raises(ValueError):
        parse(bad)


def test_bytes_earn_time_up_to_the_maximum():
    stage = Stage(20, 40, 500)
    assert deadline(stage, 100.0, 0) == 120.0
    assert deadline(stage, 100.0, 5000) == 130.0
    assert deadline(stage, 100.0, 10**9) == 140.0
    assert deadline(Stage(20, 0, 500), 100.0, 10**6) == 100.0 + 20 + 2000
    assert deadline(Stage(), 100.0, 0) == float("inf")


def test_the_directive_in_a_config_and_as_a_flag():
    from mpmserver import config as configmod

    cfg = configmod.from_kwargs(request_read_timeout="header=5-10,MinRate=100 body=0")
    assert cfg.request_read_timeout == ReadTimeouts(Stage(5, 10, 100), Stage())


# -- a real server ------------------------------------------------------------------------

