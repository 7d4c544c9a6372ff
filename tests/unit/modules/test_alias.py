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


# -- AliasMatch ----------------------------------------------------------------------

MATCHES = alias.build([("/static/", "/srv/app/static")],
                      [(r"^/assets/(.*\.css)$", "/srv/app/css/$1"), (r"^/v[0-9]+/(js)/(.*)$", "/srv/app/$1/$2")])


def resolve_match(target: bytes):
    path = alias.decoded_path(target)
    found = alias.match(MATCHES, path)
    return None if found is None else alias.resolve(found, target, path)


def test_aliasmatch_maps_the_groups_into_its_path():
    assert resolve_match(b"/assets/site.css") == b"/srv/app/css/site.css"
    assert resolve_match(b"/assets/a/b.css?x=1") == b"/srv/app/css/a/b.css"
    assert resolve_match(b"/v12/js/app.js") == b"/srv/app/js/app.js"
    assert resolve_match(b"/assets/site.js") is None  # the pattern does not match: the app's
    assert resolve_match(b"/static/x") == b"/srv/app/static/x"  # prefixes first


@pytest.mark.parametrize("target, status", [(b"/assets/../settings.css", 400), (b"/assets/%2e%2e/x.css", 400),
                                            (b"/assets/.hidden.css", 404), (b"/assets/a%2fb.css", 404),
                                            (b"/assets/x%00.css", 400)])
def test_aliasmatch_refuses_as_alias_does(target, status):
    assert resolve_match(target).status == status


def test_a_group_cannot_lead_out_of_the_target_directory():
    leaky = alias.build([], [(r"^/f/(.*)$", "/srv/app/files/$1")])
    found = alias.match(leaky, b"/f/ok.txt")
    assert alias.resolve(found, b"/f/ok.txt", b"/f/ok.txt") == b"/srv/app/files/ok.txt"
    # a target whose own ".." climbs above its fixed directory once normalized
    odd = alias.build([], [(r"^/g/(.*)$", "/srv/app/files/$1/../../../etc/passwd")])
    found = alias.match(odd, b"/g/x")
    assert alias.resolve(found, b"/g/x", b"/g/x") == Refusal(404, "AliasMatch's file path leaves its directory")


def test_parse_alias_match_checks_the_regex_and_the_path():
    assert alias.parse_alias_match(r"^/a/(.*)$", "files/$1", "/srv") == (r"^/a/(.*)$", "/srv/files/$1")
    for regex, target, why in [("(", "/srv/$1", "not a regular expression"), ("^/a/(.*)", "/srv/x/$2", "1 group"),
                               ("^/a", "/srv/x", "for a fixed prefix use Alias"), ("^/(.*)", "/$1", "directory before")]:
        with pytest.raises(ValueError, match=why):
            alias.parse_alias_match(regex, target, "/")
