"""Alias: the mapping of a request target to a file below an Alias
directory, and its refusals (modules/alias.py), without a server."""

import pytest

from mpmserver.modules import alias
from mpmserver.modules.alias import Refusal

ALIASES = alias.build([("/static/", "/srv/app/static"), ("/media", "/srv/media/"),
                       ("/static/admin/", "/srv/admin")])


def resolve(target: bytes):
    path = alias.decoded_path(target)
    found = alias.match(ALIASES, path)
    return None if found is None else alias.resolve(found, target, path)


def test_a_file_under_the_prefix_maps_to_the_directory():
    assert resolve(b"/static/css/site.css") == b"/srv/app/static/css/site.css"
    assert resolve(b"/static/css/site.css?v=3") == b"/srv/app/static/css/site.css"
    assert resolve(b"/static//css///site.css") == b"/srv/app/static/css/site.css"
    assert resolve(b"/static/caf%C3%A9.png") == "/srv/app/static/café.png".encode()


def test_the_longest_prefix_wins_and_a_prefix_without_slash_matches_whole_segments():
    assert resolve(b"/static/admin/base.css") == b"/srv/admin/base.css"
    assert resolve(b"/media/a.jpg") == b"/srv/media/a.jpg"
    assert resolve(b"/mediafile") is None
    assert resolve(b"/static") is None  # "/static/" needs its slash, as in Apache
    assert resolve(b"/app/static/x.css") is None


def test_the_prefix_is_matched_decoded():
    assert resolve(b"/%73tatic/x.css") == b"/srv/app/static/x.css"


@pytest.mark.parametrize("target", [b"/static/../settings.py", b"/static/%2e%2e/settings.py",
                                    b"/static/%2E%2E/x", b"/static/css/../../etc/passwd", b"/static/./x.css",
                                    b"/static/.%2e/x"])
def test_dot_segments_are_refused_400(target):
    assert resolve(target) == Refusal(400, "dot segment in the request path")


@pytest.mark.parametrize("target", [b"/static/x%00.css", b"/static/x\0.css"])
def test_nul_is_refused_400(target):
    assert resolve(target).status == 400


@pytest.mark.parametrize("target", [b"/static/..%2fsettings.py", b"/static/css%2Fsite.css", b"/static/a%5cb"])
def test_encoded_slashes_are_refused_404(target):
    assert resolve(target).status == 404


@pytest.mark.parametrize("target", [b"/static/.env", b"/static/.git/config", b"/static/css/.hidden.css"])
def test_dotfiles_are_refused_404(target):
    assert resolve(target) == Refusal(404, "dotfiles are never served")


@pytest.mark.parametrize("target", [b"/static/", b"/static/css/", b"/media"])
def test_directories_are_never_listed(target):
    assert resolve(target) == Refusal(404, "directories are never listed")


def test_parse_alias_checks_the_words(tmp_path):
    d = tmp_path / "static"
    d.mkdir()
    assert alias.parse_alias(["/static/", "static"], str(tmp_path)) == ("/static/", str(d))
    assert alias.parse_alias([f"/s/={d}"], "/") == ("/s/", str(d))
    for words, why in [(["static/", str(d)], "starting with /"), (["/", str(d)], "every request"),
                       (["/s/"], "URL path and a directory"),
                       (["/s%20/", str(d)], "percent")]:
        with pytest.raises(ValueError, match=why):
            alias.parse_alias(words, "/")
