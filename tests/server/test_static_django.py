"""Django's static files through Alias, in place of WhiteNoise (issue 27):
collectstatic fills STATIC_ROOT under ManifestStaticFilesStorage's hashed
names, mpmserver serves it with --static /static/=STATIC_ROOT, and the
admin's login page, rendered by Django in a worker, links CSS that the
listener answers (docs/serving.md shows the same setup)."""

from __future__ import annotations

import http.client
import re

import pytest

from mpmserver.scoreboard import Scoreboard
from tests.support.djangostatic import WSGI_APP, collected_static_root
from tests.support.server import Server, wait_for

pytest.importorskip("django")


@pytest.fixture
def static_root(request):
    return collected_static_root(request)


def fetch(port: int, path: str, headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {"Host": "127.0.0.1"})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_the_admin_css_comes_from_the_alias_not_from_django(static_root, tmp_path):
    sb = tmp_path / "scoreboard"
    s = Server("--static", f"/static/={static_root}", "--static-immutable-hashed", "on", "--expires-active", "on",
               "--expires-default", "access plus 1 hour", "--scoreboard-file", str(sb), "--fixed-servers", "1",
               app=WSGI_APP, tmp_path=tmp_path,
               env={"MPMSERVER_TEST_STATIC_ROOT": str(static_root)}).start()
    try:
        status, _, page = fetch(s.port, "/admin/login/")
        assert status == 200, page[:500]
        css = re.findall(rb'href="(/static/admin/css/[^"]+\.css)"', page)
        assert css and all(re.search(rb"\.[0-9a-f]{12}\.css$", c) for c in css), css
        board = Scoreboard.attach(str(sb))
        # Once no worker is busy, the login page's request is counted (a
        # worker counts it after writing it, then goes back to READY).
        before = wait_for(lambda: (snap := board.snapshot()).busy_workers == 0 and snap, 10,
                          what="the workers idle after the login page")
        for href in css:
            status, headers, body = fetch(s.port, href.decode())
            name = href.decode()[len("/static/"):]
            assert status == 200 and body == (static_root / name).read_bytes()
            assert headers["content-type"] == "text/css; charset=utf-8"
            assert headers["cache-control"] == "public, max-age=31536000, immutable"
            assert fetch(s.port, href.decode(), {"If-None-Match": headers["etag"]})[0] == 304
        # an unhashed name gets ExpiresDefault's hour
        assert fetch(s.port, "/static/admin/css/base.css")[1]["cache-control"] == "max-age=3600"
        after = board.snapshot()
        workers = [sum(w.access_count for p in snap.processes for w in p.workers) for snap in (before, after)]
        assert workers[0] == workers[1]  # Django never saw them
        assert after.static_requests - before.static_requests == 2 * len(css) + 1
    finally:
        s.stop()
