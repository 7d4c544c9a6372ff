"""Alias (mod_alias): URL-path prefixes mapped to directories, and the
mapping of a request target to a file below one of them.

``Alias /static/ /srv/app/static/`` maps /static/css/site.css to
/srv/app/static/css/site.css. The mapping refuses what could leave the
directory or reveal what was never meant to be served, before any file is
looked at:

- a NUL byte, raw or as %00: 400;
- a dot segment (``.`` or ``..``, raw or percent-encoded as %2e): 400
  (RFC 3986 clients remove dot segments before sending; only a probe sends
  one);
- an encoded slash (%2f) or backslash (%5c) in the path: 404, as Apache's
  AllowEncodedSlashes Off;
- a segment starting with a dot (.env, .git/config): 404, never served;
- a path ending in a slash (a directory): 404, directories are never listed.

What needs the file system (the file is a regular file, a symlink does not
leave the directory unless FollowSymLinks) is checked where the file is
opened (child/files.py). Everything here is pure: no I/O.

Paths are bytes throughout (a Linux file name is bytes); the prefix is
matched against the decoded path, as Apache matches Alias against the
decoded URI, so /%73tatic/x matches /static/ too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

__all__ = ["Alias", "Refusal", "parse_alias", "parse_alias_match", "build", "from_config", "claims", "match",
           "resolve", "decoded_path"]


@dataclass(frozen=True, slots=True)
class Alias:
    """One Alias line: a URL-path prefix and the directory it names; or one
    AliasMatch line: a regular expression over the decoded path and the
    file path it makes ($1..$9), below ``directory``."""

    prefix: bytes  # "/static/" or "/static" (then "/static" itself and "/static/..." match); b"" for AliasMatch
    directory: bytes  # absolute and normalized, no trailing slash (AliasMatch: the target's part before any $)
    pattern: Any = None  # AliasMatch: re.Pattern[bytes]
    target: bytes = b""  # AliasMatch: the file path, with $N for the pattern's groups


class Refusal(NamedTuple):
    """A target the mapping refuses: the status to answer and why (error log)."""

    status: int
    reason: str


def parse_alias(words: list[str], base: str) -> tuple[str, str]:
    """``Alias URL-path directory``, or one word ``URL-path=directory`` (the
    --static flag, gunicorn style). The directory is made absolute
    (relative to ``base``, the configuration file's directory); it need not
    exist yet (Apache's Alias: its files are 404 until it does). Raises
    ValueError with a reason."""
    if len(words) == 1:
        url, sep, directory = words[0].partition("=")
        if not sep:
            raise ValueError(f"{words[0]!r}: give a URL path and a directory, e.g. /static/ /srv/app/static/ "
                             "(or /static/=/srv/app/static/ as one word)")
    else:
        url, directory = words
    if not url.startswith("/"):
        raise ValueError(f"{url!r} must be a URL path starting with /, e.g. /static/")
    if "?" in url or "%" in url or "\0" in url:
        raise ValueError(f"{url!r}: a URL path prefix has no query and no percent-encoding")
    if url == "/":
        raise ValueError("Alias / would serve every request from files; give a prefix such as /static/")
    if not directory:
        raise ValueError("the directory must not be empty")
    return url, os.path.normpath(os.path.join(base, directory))


def parse_alias_match(regex: str, target: str, base: str) -> tuple[str, str]:
    """``AliasMatch regex file-path``: the regular expression must compile
    and the file path be absolute (or relative to ``base``) with a fixed
    directory before its first $N. Raises ValueError with a reason."""
    try:
        groups = re.compile(os.fsencode(regex)).groups
    except re.error as exc:
        raise ValueError(f"{regex!r} is not a regular expression: {exc}") from None
    path = os.path.join(base, target)
    used = [int(n) for n in re.findall(r"\$([0-9])", path)]
    if used and max(used) > groups:
        raise ValueError(f"{target!r} names ${max(used)}, but {regex!r} has {groups} group(s)")
    if "$" not in path:
        raise ValueError(f"{target!r}: name the matched part with $1 (e.g. /srv/app/static/$1); "
                         "for a fixed prefix use Alias")
    root = path[:path.index("$")].rpartition("/")[0]
    if not root or root == "/":
        raise ValueError(f"{target!r}: the file path needs a directory before its first $, e.g. /srv/app/static/$1")
    return regex, path


def build(pairs: list[tuple[str, str]], matches: list[tuple[str, str]] = ()) -> tuple[Alias, ...]:
    """The Alias lines as the server matches them: the longest prefix first
    (Apache takes the first match in file order; longest-first gives the
    same answer for the usual nested lines and never a surprising one),
    then the AliasMatch lines in their order."""
    aliases = [Alias(os.fsencode(url), os.fsencode(directory).rstrip(b"/") or b"/") for url, directory in pairs]
    aliases.sort(key=lambda a: -len(a.prefix))
    for regex, target in matches:
        t = os.fsencode(target)
        aliases.append(Alias(b"", os.path.normpath(t[:t.index(b"$")].rpartition(b"/")[0]),
                             re.compile(os.fsencode(regex)), t))
    return tuple(aliases)


def from_config(cfg: Any) -> tuple[Alias, ...] | None:
    """A configuration's Alias and AliasMatch lines; None without any."""
    if not cfg.aliases and not cfg.alias_matches:
        return None
    return build(cfg.aliases, cfg.alias_matches)


def decoded_path(target: bytes) -> bytes:
    """The path of an origin-form target, its query cut and its
    percent-escapes decoded (escaped slashes too: ``resolve`` looks at the
    raw target to refuse those)."""
    path = target.partition(b"?")[0]
    return unquote_to_bytes(path) if b"%" in path else path


def claims(aliases: tuple[Alias, ...], head: bytes) -> bool:
    """Whether the listener answers this request head (a GET or HEAD an
    Alias covers): a worker that finds one pipelined behind an app's
    response gives the connection back instead of running it."""
    method, _, rest = head[:head.find(b"\r\n")].partition(b" ")
    if method != b"GET" and method != b"HEAD":
        return False
    return match(aliases, decoded_path(rest.partition(b" ")[0])) is not None


def match(aliases: tuple[Alias, ...], path: bytes) -> Alias | None:
    """The Alias whose prefix covers the decoded ``path``, or None."""
    for alias in aliases:
        if alias.pattern is not None:
            if alias.pattern.search(path) is not None:
                return alias
            continue
        prefix = alias.prefix
        if path.startswith(prefix) and (prefix[-1:] == b"/" or len(path) == len(prefix)
                                        or path[len(prefix)] == 0x2F):
            return alias
    return None


# An encoded slash or backslash, in any case (%2f, %2F, %5c, %5C).
_ENCODED_SEPARATOR = re.compile(rb"%(?:2[fF]|5[cC])").search


def resolve(alias: Alias, target: bytes, path: bytes) -> bytes | Refusal:
    """The file ``path`` (decoded_path of ``target``, which ``alias``
    matched) names below the alias's directory, or why it is refused."""
    if b"\0" in path:
        return Refusal(400, "NUL in the request path")
    if _ENCODED_SEPARATOR(target.partition(b"?")[0]) is not None:
        return Refusal(404, "encoded slash in the request path (AllowEncodedSlashes Off)")
    rest = path if alias.pattern is not None else path[len(alias.prefix):]
    segments = [s for s in rest.split(b"/") if s]  # "//" is one separator
    for s in segments:
        if s == b"." or s == b"..":
            return Refusal(400, "dot segment in the request path")
        if s[:1] == b".":
            return Refusal(404, "dotfiles are never served")
    if not segments or path.endswith(b"/"):
        return Refusal(404, "directories are never listed")
    if alias.pattern is not None:
        return _matched_file(alias, path)
    return alias.directory + b"/" + b"/".join(segments)


_GROUP = re.compile(rb"\$([0-9])")


def _matched_file(alias: Alias, path: bytes) -> bytes | Refusal:
    """AliasMatch's file: its target with $N the pattern's groups, which
    must stay below the target's fixed directory."""
    m = alias.pattern.search(path)
    file = os.path.normpath(_GROUP.sub(lambda g: m.group(int(g.group(1))) or b"", alias.target))
    if not file.startswith(alias.directory + b"/"):
        return Refusal(404, "AliasMatch's file path leaves its directory")
    return file
