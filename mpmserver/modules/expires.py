"""mod_expires for the files Alias serves: ExpiresActive, ExpiresDefault,
and StaticImmutableHashed for Django's hashed names.

``ExpiresDefault "access plus 1 year"`` (or Apache's short form
``A31536000``) gives every file an Expires header and a Cache-Control
max-age; ``modification plus 1 week`` counts from the file's mtime (M in
the short form). With StaticImmutableHashed On, a name carrying a content
hash as Django's ManifestStaticFilesStorage writes it (site.0123456789ab.css)
is cached for a year with ``immutable``, whatever ExpiresDefault says: its
content can never change under that name.

Pure: the clock and the file's mtime are arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Expiry", "parse_spec", "cache_headers", "is_hashed", "IMMUTABLE"]

# mod_expires' units, in seconds (a month is 30 days, a year 365, as Apache counts).
_UNITS = {"year": 31536000, "month": 2592000, "week": 604800, "day": 86400, "hour": 3600,
          "minute": 60, "second": 1}
_SHORT = re.compile(r"([AM])([0-9]+)\Z")
# One year, as WhiteNoise and Django's docs give hashed files.
IMMUTABLE_SECONDS = 31536000
IMMUTABLE = b"public, max-age=31536000, immutable"
# Django's ManifestStaticFilesStorage: name.<12 hex digits>.ext (the hash
# before the last suffix; .gz/.br siblings keep it).
_HASHED = re.compile(rb"\.[0-9a-f]{12}\.[^./]+(?:\.(?:gz|br))?\Z")


@dataclass(frozen=True, slots=True)
class Expiry:
    """An ExpiresDefault: from access (the request) or modification (the
    file's mtime), plus ``seconds``."""

    from_modification: bool
    seconds: int


def parse_spec(spec: str) -> Expiry:
    """``access plus 1 year 2 months``, ``now plus 1 day``, ``modification
    plus 1 hour``, ``A3600``, ``M86400``; raises ValueError with a reason."""
    spec = spec.strip()
    short = _SHORT.match(spec)
    if short:
        return Expiry(short.group(1) == "M", int(short.group(2)))
    words = spec.lower().split()
    if not words or words[0] not in ("access", "now", "modification"):
        raise ValueError(f"{spec!r}: start with access, now or modification, e.g. \"access plus 1 year\" "
                         "(or A<seconds>, M<seconds>)")
    base, rest = words[0], words[1:]
    if rest[:1] == ["plus"]:
        rest = rest[1:]
    if not rest or len(rest) % 2:
        raise ValueError(f"{spec!r}: give <number> <unit> pairs after plus, e.g. \"access plus 1 month\"")
    seconds = 0
    for number, unit in zip(rest[::2], rest[1::2]):
        if not number.isdigit():
            raise ValueError(f"{spec!r}: {number!r} is not a whole number")
        unit = unit[:-1] if unit.endswith("s") else unit
        if unit not in _UNITS:
            raise ValueError(f"{spec!r}: {unit!r} is not one of years months weeks days hours minutes seconds")
        seconds += int(number) * _UNITS[unit]
    return Expiry(base == "modification", seconds)


def is_hashed(name: bytes) -> bool:
    """A file name with a content hash in it (ManifestStaticFilesStorage's)."""
    return _HASHED.search(name) is not None


def cache_headers(expiry: Expiry | None, immutable: bool, mtime: float, now: float,
                  http_date) -> list[tuple[bytes, bytes]]:
    """The Cache-Control and Expires headers of a file: none when
    ExpiresActive is off (``expiry`` None) and the file is not immutable.
    ``http_date(seconds)`` formats an IMF-fixdate."""
    if immutable:
        return [(b"Cache-Control", IMMUTABLE), (b"Expires", http_date(now + IMMUTABLE_SECONDS))]
    if expiry is None:
        return []
    until = (mtime if expiry.from_modification else now) + expiry.seconds
    max_age = max(0, int(until - now))
    return [(b"Cache-Control", b"max-age=%d" % max_age), (b"Expires", http_date(until))]
