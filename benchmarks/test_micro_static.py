"""Per-request cost of Alias (issue 27).

    python -m pytest -q -p no:cacheprovider benchmarks/test_micro_static.py \
        --benchmark-columns=min,median,mean,rounds

What an app request pays once an Alias is configured (the listener's
static room looks at its head and lets it go: StaticFiles.serve itself,
driven with the room's one attribute it reads for such a request), and the
pure half of answering a file (the request's fields and the decision).
Each benchmark asserts its result.
"""

from __future__ import annotations

import types

from benchmarks.test_micro_protocol import BROWSER_HEAD
from mpmserver.child.listener.static import StaticFiles
from mpmserver.modules import alias, static_files

ALIASES = alias.build([("/static/", "/srv/app/static"), ("/media/", "/srv/app/media")])
CSS_HEAD = BROWSER_HEAD.replace(b"/index.html?q=1", b"/static/css/base.0123456789ab.css")
FACTS = static_files.FileFacts(4096, 1_700_000_000.0, b'"1000-5f0e1d2c3b4a5"', b"Tue, 14 Nov 2023 22:13:20 GMT")
COMMON = [(b"Content-Type", b"text/css; charset=utf-8")]


def test_an_app_request_with_aliases_configured(benchmark):
    room = types.SimpleNamespace(aliases=ALIASES)
    conn = types.SimpleNamespace(buf=BROWSER_HEAD)
    end = len(BROWSER_HEAD)
    assert benchmark(StaticFiles.serve, room, conn, end, False) is False


def test_the_answer_to_a_file_request(benchmark):
    def answer():
        fields = static_files.request_fields(CSS_HEAD)
        return static_files.decide(False, fields, FACTS, COMMON)

    assert benchmark(answer).status == 200
