"""pages.serve_page: the one handler wrapper of StatusPath, MetricsPath and HealthPath."""

from __future__ import annotations

import pytest

from mpmserver.modules import pages
from mpmserver.modules.pages import Answer, client_allowed, serve_page


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"app"]


def call(wrapped, path="/page", method="GET", remote="127.0.0.1"):
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(wrapped({"PATH_INFO": path, "REQUEST_METHOD": method, "REMOTE_ADDR": remote},
                            start_response))
    return got["status"], got["headers"], body


def page(**kw):
    return serve_page(app, "/page", lambda environ: Answer("200 OK", b"body\n"), what="The page", **kw)


def test_other_paths_go_to_the_app():
    assert call(page(), path="/pages") == ("200 OK", {}, b"app")


def test_the_answer_is_small_and_never_cached():
    status, headers, body = call(page())
    assert (status, body) == ("200 OK", b"body\n")
    assert headers == {"Content-Type": "text/plain; charset=utf-8", "Content-Length": "5",
                       "Cache-Control": "no-store"}
    assert call(page(), method="HEAD")[1:] == (headers, b"")


def test_only_get_and_head_unless_every_method_is_answered():
    status, headers, body = call(page(), method="POST")
    assert status == "405 Method Not Allowed" and headers["Allow"] == "GET, HEAD"
    assert body == b"The page answers GET and HEAD only.\n"
    assert call(page(any_method=True), method="OPTIONS")[0] == "200 OK"


@pytest.mark.parametrize("remote, ok", [("127.0.0.1", True), ("::ffff:127.0.0.1", True),
                                        ("10.0.0.1", False), ("::1", True), ("fe80::1%eth0", False),
                                        ("", False), ("not an address", False)])
def test_allow_lists_judge_mapped_addresses_as_ipv4(remote, ok):
    wrapped = page(allow=["127.0.0.0/8", "::1"], directive="PageAllow")
    status, _, body = call(wrapped, remote=remote)
    assert (status == "200 OK") is ok
    if not ok:
        assert status == "403 Forbidden" and body == f"The page is not available to {remote}; see PageAllow.\n".encode()


def test_the_allow_decision_is_cached_per_address_and_bounded(monkeypatch):
    calls = []

    def counting(remote, networks):
        calls.append(remote)
        return client_allowed(remote, networks)

    monkeypatch.setattr(pages, "client_allowed", counting)
    monkeypatch.setattr(pages, "ALLOW_CACHE_SIZE", 2)
    wrapped = page(allow=["127.0.0.0/8"], directive="PageAllow")
    for remote in ("127.0.0.1", "127.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"):
        call(wrapped, remote=remote)
    assert calls == ["127.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"]  # the third address is not kept
