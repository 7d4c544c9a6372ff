"""Apache-style configuration: parse, validate and clamp.

Pure policy: reads configuration files but never opens sockets, forks or
resolves users. Directive names, defaults, warning texts and the clamping
order follow httpd 2.4's worker MPM (worker_check_config() and worker_run()),
so an Apache administrator's knowledge carries over.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .appspec import parse_app_spec
from .logs import COMBINED, COMMON, LEVEL_NAMES, LEVELS
from .modules import alias, expires, reqtimeout, tls
from .modules.remoteip import parse_trusted
from .modules.reqtimeout import ReadTimeouts
from .scoreboard import HARD_LIMIT

__all__ = [
    "ConfigError", "Config", "Directive", "DIRECTIVES", "load", "add_arguments",
    "overrides_from_args", "from_kwargs", "daemons_limit", "check_config",
    "reconcile_restart",
]

DEFAULT_LISTEN = ("127.0.0.1", 8000)
# The error log of a server detached by -k start without an ErrorLog.
DEFAULT_ERROR_LOG = "mpmserver-error.log"


class ConfigError(Exception):
    """A configuration mistake; str() is one line naming where and what."""


class _Bad(Exception):
    """A value problem not yet tied to a location (wrapped into ConfigError)."""


@dataclass
class Config:
    listen: list[tuple[str, int]] = field(default_factory=lambda: [DEFAULT_LISTEN])
    # Some Listen line was given (else, under socket activation, the inherited sockets serve alone).
    listen_explicit: bool = False
    listen_backlog: int = 511
    start_servers: int = 3
    threads_per_child: int = 25
    thread_limit: int = 64
    server_limit: int = 16
    max_request_workers: int = 400
    min_spare_threads: int = 75
    max_spare_threads: int = 250
    # gunicorn's -w: exactly this many children, kept by maintenance whatever
    # the spare threads (0: Apache's pool between Min/MaxSpareThreads).
    fixed_servers: int = 0
    max_connections_per_child: int = 0
    max_connections_per_child_jitter: int = 0
    max_requests_per_child: int = 0
    max_memory_per_child: int = 0
    max_memory_per_child_hard: int = 0
    user: str | None = None
    group: str | None = None
    pid_file: str | None = None
    scoreboard_file: str | None = None
    timeout: float = 60.0
    keep_alive: bool = True
    keep_alive_timeout: float = 5.0
    max_keep_alive_requests: int = 100
    graceful_shutdown_timeout: float = 0.0
    graceful_stop_drain: float = 0.0
    request_timeout: float = 0.0
    error_log: str | None = None
    log_level: str = "warn"
    log_formats: dict[str, str] = field(
        default_factory=lambda: {"common": COMMON, "combined": COMBINED})
    custom_logs: list[tuple[str, str]] = field(default_factory=list)
    limit_request_line: int = 8190
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    limit_request_body: int = 1073741824
    request_body_buffer: int = 65536
    # Spooling (http/spool.py): request bodies and slow clients' responses.
    request_body_spool: int = 1 << 30
    request_body_spool_exclude: list[str] = field(default_factory=list)
    response_spool: int = 64 << 20
    response_spool_memory: int = 1 << 20
    spool_limit_per_child: int = 1 << 30
    spool_directory: str | None = None
    request_read_timeout: ReadTimeouts = reqtimeout.DEFAULT
    status_path: str | None = None
    status_allow: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    status_show_query: bool = False
    health_path: str | None = None
    metrics_path: str | None = None
    metrics_allow: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    agent_listen: tuple[str, int] | None = None
    # Reverse proxies (remoteip.py) and unix sockets (listen.py).
    remote_ip_header: str | None = None
    remote_ip_trusted_proxy: list[str] = field(default_factory=list)
    remote_ip_proxy_protocol: bool = False
    unix_socket_mode: int = 0o660
    unix_socket_group: str | None = None
    # TLS (modules/tls.py): mod_ssl's directives; Listen lines' own protocol
    # ("http"/"https") by address; the context built from them when read.
    listen_protocols: dict[tuple[str, int], str] = field(default_factory=dict)
    ssl_engine: bool = False
    ssl_certificate_file: str | None = None
    ssl_certificate_key_file: str | None = None
    ssl_certificate_chain_file: str | None = None
    ssl_ca_certificate_file: str | None = None
    ssl_protocol: tls.Protocols = tls.Protocols()
    ssl_cipher_suite: str | None = None
    ssl_honor_cipher_order: bool = False
    ssl_session_tickets: bool = True
    ssl_verify_client: str = "none"
    ssl_pass_phrase_dialog: str = "builtin"
    ssl_context: Any = field(default=None, repr=False, compare=False)
    preload_app: bool = False
    event_loop: str = "uvloop"
    async_request_worker_factor: float = 2.0
    max_open_connections_per_child: int = 4096
    wsgi_app: str | None = None
    # Where the app lives (gunicorn's --chdir, --pythonpath): absolute paths.
    chdir: str | None = None
    python_path: list[str] = field(default_factory=list)
    config_file: str | None = None
    # Static files served by the listener (modules/alias.py, modules/expires.py):
    # (URL-path prefix, absolute directory) per Alias line.
    aliases: list[tuple[str, str]] = field(default_factory=list)
    alias_matches: list[tuple[str, str]] = field(default_factory=list)  # AliasMatch: (regex, file path with $N)
    follow_symlinks: bool = False  # Options FollowSymLinks
    expires_active: bool = False
    expires_default: expires.Expiry | None = None
    static_immutable_hashed: bool = False
    static_file_cache: int = 256
    # Warnings produced while building this Config (deprecations, clamping).
    warnings: list[str] = field(default_factory=list, repr=False, compare=False)


# --------------------------------------------------------------------------
# Value converters: str args -> Python value, raising _Bad with a reason.

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_NUM_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|s|mi|min|h)?\Z", re.I)
_SIZE_RE = re.compile(r"([0-9]+)([kmg]?)b?\Z", re.I)
_DURATION_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "mi": 60.0, "min": 60.0, "h": 3600.0}
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_GLOB_MAGIC = re.compile(r"[*?[]")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?\Z")


def _int(s: str) -> int:
    if not _INT_RE.match(s):
        raise _Bad(f"{s!r} is not a whole number")
    return int(s)


def _nonneg(s: str) -> int:
    n = _int(s)
    if n < 0:
        raise _Bad(f"{s!r} must not be negative")
    return n


def _positive(s: str) -> int:
    n = _int(s)
    if n < 1:
        raise _Bad(f"{s!r} must be at least 1")
    return n


def _duration(s: str) -> float:
    m = _DURATION_RE.match(s)
    if not m:
        if s.startswith("-") and _DURATION_RE.match(s[1:]):
            raise _Bad(f"{s!r} must not be negative")
        raise _Bad(f"{s!r} is not a duration (seconds, e.g. 5, 2.5 or 500ms)")
    unit = m.group(2).lower() if m.group(2) else None
    return float(m.group(1)) * _DURATION_UNITS[unit]


def _positive_number(s: str) -> float:
    if not _NUM_RE.match(s) or float(s) <= 0:
        raise _Bad(f"{s!r} must be a number greater than 0")
    return float(s)


def _size(s: str) -> int:
    m = _SIZE_RE.match(s)
    if not m:
        raise _Bad(f"{s!r} is not a size in bytes (e.g. 0, 1048576, 512K, 512M or 2G)")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def _read_timeouts(s: str) -> ReadTimeouts:
    try:
        return reqtimeout.parse(s)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _ssl_protocol(s: str) -> tls.Protocols:
    try:
        return tls.parse_protocols(s)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _verify_client(s: str) -> str:
    try:
        return tls.parse_verify_client(s)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _pass_phrase_dialog(s: str) -> str:
    try:
        return tls.parse_pass_phrase_dialog(s)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _flag(s: str) -> bool:
    v = s.lower()
    if v == "on":
        return True
    if v == "off":
        return False
    raise _Bad(f"{s!r} must be On or Off")


def _fixed_servers(s: str) -> int:
    """FixedServers N, or auto: one child per CPU the process may use."""
    if s.lower() == "auto":
        return available_cpus()
    return _nonneg(s)


def _choice(*choices: str) -> Callable[[str], str]:
    def conv(s: str) -> str:
        v = s.lower()
        if v not in choices:
            raise _Bad(f"{s!r} must be one of: {', '.join(choices)}")
        return v
    return conv


def _string(s: str) -> str:
    if not s:
        raise _Bad("must not be empty")
    return s


def _log_level(s: str) -> str:
    v = s.lower()
    if v not in LEVELS:
        raise _Bad(f"{s!r} is not a log level; use one of: {', '.join(LEVEL_NAMES)} (or trace1-8)")
    return LEVEL_NAMES[LEVELS[v]]  # trace1-8 are debug: mpmserver logs nothing finer


def _account(kind: str) -> Callable[[str], str]:
    def conv(s: str) -> str:
        if not s:
            raise _Bad("must not be empty")
        if s.startswith("#") and not s[1:].isdigit():
            raise _Bad(f"{s!r}: a numeric {kind} id is written # followed by digits, e.g. #65534")
        if kind == "user" and (s == "root" or (s.startswith("#") and int(s[1:]) == 0)):
            raise _Bad(f"refusing to run children as root ({s!r}); "
                       "choose an unprivileged account such as nobody")
        return s
    return conv


def _directory(s: str, base: str) -> str:
    """An existing directory, made absolute: a relative path is relative to
    ``base`` (the configuration file's directory, as for Include; the current
    directory on the command line), so that -t run from elsewhere agrees."""
    if not s:
        raise _Bad("must not be empty")
    path = os.path.normpath(os.path.join(base, s))
    if not os.path.exists(path):
        raise _Bad(f"directory {path!r} does not exist")
    if not os.path.isdir(path):
        raise _Bad(f"{path!r} is not a directory")
    return path


# PythonPath takes gunicorn's comma-separated list, or PYTHONPATH's colons.
_PATH_LIST_SEP = re.compile(r"[:,]")


def _options(s: str) -> bool:
    """Options, for what mpmserver serves itself: FollowSymLinks only."""
    on = False
    for word in s.split():
        name = word.lstrip("+-").lower()
        if name == "none":
            on = False
        elif name == "followsymlinks":
            on = not word.startswith("-")
        else:
            raise _Bad(f"{word!r}: only FollowSymLinks (or -FollowSymLinks, None) is supported; "
                       "directories are never listed (no Indexes) and nothing is executed")
    return on


def _expiry(s: str) -> expires.Expiry:
    try:
        return expires.parse_spec(s)
    except ValueError as e:
        raise _Bad(str(e)) from None


def _wsgi_app(s: str) -> str:
    try:
        parse_app_spec(s)
    except ValueError as e:
        raise _Bad(str(e)) from None
    return s


def _status_path(s: str) -> str:
    if not s.startswith("/"):
        raise _Bad(f"{s!r} must be a URL path starting with /, e.g. /server-status")
    return s


def _url_prefix(s: str) -> str:
    if not s.startswith("/"):
        raise _Bad(f"{s!r} must be a URL path prefix starting with /, e.g. /upload/stream/")
    return s


def _network(s: str) -> str:
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise _Bad(f"{s!r} is not an IP address or network (e.g. 127.0.0.1, ::1, 10.0.0.0/8)") from None
    return s


_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _header_name(s: str) -> str:
    if not _TOKEN_RE.match(s):
        raise _Bad(f"{s!r} is not a header name (e.g. X-Forwarded-For or Forwarded)")
    return s


def _trusted_proxy(s: str) -> str:
    try:
        parse_trusted(s)
    except ValueError:
        raise _Bad(f"{s!r} is not an IP address, a network (e.g. 10.0.0.0/8, fd00::/8) or unix") from None
    return s


def _file_mode(s: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", s):
        raise _Bad(f"{s!r} is not an octal file mode such as 0660 or 0666")
    return int(s, 8)


def _host(h: str) -> str:
    if h == "*":
        return "0.0.0.0"
    try:
        return str(ipaddress.IPv4Address(h))
    except ValueError:
        pass
    # Digits-and-dots that failed as IPv4 is a mistyped address, not a name.
    if re.fullmatch(r"[0-9.]+", h) or not _HOSTNAME_RE.match(h):
        raise _Bad(f"{h!r} is not a valid IPv4 address or host name")
    return h


def _port(s: str, addr: str) -> int:
    if not s.isdigit() or int(s) > 65535:
        raise _Bad(f"{addr!r}: port {s!r} is not a number from 0 to 65535; "
                   "use [address:]port, e.g. 8080, 127.0.0.1:8080 or [::1]:8080")
    return int(s)


# Listen unix:/run/app.sock is kept as ("unix:/run/app.sock", 0): a unix
# socket has no port.
UNIX_PREFIX = "unix:"
# sun_path holds 108 bytes, the terminating NUL included.
UNIX_PATH_MAX = 107


def is_unix(host: str) -> bool:
    """A Listen address that is a unix socket (its path follows UNIX_PREFIX)."""
    return host.startswith(UNIX_PREFIX)


def parse_listen(addr: str) -> tuple[str, int]:
    """'8080' -> ('0.0.0.0', 8080); 'h:p'; '[v6]:p' -> ('v6', p);
    'unix:PATH' -> ('unix:/absolute/PATH', 0)."""
    if is_unix(addr):
        path = addr[len(UNIX_PREFIX):]
        if not path:
            raise _Bad(f"{addr!r}: missing socket path after 'unix:', e.g. unix:/run/mpmserver/app.sock")
        path = os.path.abspath(path)
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise _Bad(f"{addr!r}: the path {path!r} is longer than a unix socket allows "
                       f"({UNIX_PATH_MAX} bytes)")
        return UNIX_PREFIX + path, 0
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0 or addr[end + 1:end + 2] != ":":
            raise _Bad(f"{addr!r} is not a valid address; write IPv6 as [address]:port, e.g. [::1]:8080")
        host = addr[1:end]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise _Bad(f"{host!r} is not a valid IPv6 address") from None
        return host, _port(addr[end + 2:], addr)
    host, sep, port = addr.rpartition(":")
    if not sep:
        return "0.0.0.0", _port(addr, addr)
    if ":" in host:
        raise _Bad(f"{addr!r}: write IPv6 addresses in brackets, e.g. [::1]:8080")
    if not host:
        raise _Bad(f"{addr!r}: missing address before ':'")
    return _host(host), _port(port, addr)


def _agent_listen(s: str) -> tuple[str, int]:
    if is_unix(s):
        raise _Bad(f"{s!r}: HAProxy's agent-check connects over TCP; give an address:port, e.g. 127.0.0.1:9999")
    addr = parse_listen(s)
    if addr[1] == 0:
        raise _Bad(f"{s!r}: port 0; give the port HAProxy's agent-port names, e.g. 127.0.0.1:9999")
    return addr


def _listen_arg(host: str, port: int) -> str:
    if is_unix(host):
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------
# FixedServers auto: the CPUs a container or a taskset gives the process.

CGROUP_ROOT = "/sys/fs/cgroup"


def cpus_from(affinity: int, quotas: Iterable[tuple[int, int]]) -> int:
    """CPUs the process may use: its affinity mask's count, bounded by
    each cgroup CPU quota (quota, period in microseconds; quota < 0 is none)
    on the way to the root, rounded up (a 1.5-CPU quota keeps 2 children
    busy), at least 1."""
    cpus = float(max(1, affinity))
    for quota, period in quotas:
        if quota > 0 and period > 0:
            cpus = min(cpus, quota / period)
    return max(1, math.ceil(cpus))


def parse_cpu_max(text: str) -> tuple[int, int]:
    """cgroup v2 cpu.max ("max 100000" or "150000 100000") -> (quota, period); -1 is no quota."""
    words = text.split()
    quota = -1 if not words or words[0] == "max" else int(words[0])
    return quota, int(words[1]) if len(words) > 1 else 100000


def cgroup_quotas(proc_cgroup: str, root: str = CGROUP_ROOT) -> list[tuple[int, int]]:
    """The CPU quotas of the process's cgroup and its ancestors, read from
    cgroup v2's cpu.max files, or v1's cpu.cfs_quota_us/cpu.cfs_period_us
    (proc_cgroup is /proc/self/cgroup's text); files that are not there
    (no cgroup, no cpu controller) give none."""
    quotas: list[tuple[int, int]] = []
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            quotas += _quotas_up(os.path.join(root, "unified") if os.path.isdir(os.path.join(root, "unified"))
                                 else root, path, _read_cpu_max)
        elif "cpu" in controllers.split(","):
            quotas += _quotas_up(os.path.join(root, controllers), path, _read_cfs)
    return quotas


def _quotas_up(mount: str, path: str, read: Callable[[str], tuple[int, int] | None]) -> list[tuple[int, int]]:
    out = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        found = read(os.path.join(mount, *parts[:depth]))
        if found:
            out.append(found)
    return out


def _read_cpu_max(directory: str) -> tuple[int, int] | None:
    try:
        with open(os.path.join(directory, "cpu.max")) as f:
            return parse_cpu_max(f.read())
    except (OSError, ValueError):
        return None


def _read_cfs(directory: str) -> tuple[int, int] | None:
    try:
        with open(os.path.join(directory, "cpu.cfs_quota_us")) as q, \
                open(os.path.join(directory, "cpu.cfs_period_us")) as p:
            return int(q.read()), int(p.read())
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """FixedServers auto's count for this process."""
    try:
        with open("/proc/self/cgroup") as f:
            proc_cgroup = f.read()
    except OSError:
        proc_cgroup = ""
    return cpus_from(len(os.sched_getaffinity(0)), cgroup_quotas(proc_cgroup))


# --------------------------------------------------------------------------
# The directive registry.

@dataclass(frozen=True)
class Directive:
    name: str                 # Apache spelling
    attr: str | None          # Config field it sets (None: Include)
    kind: str                 # "scalar", "listen", "list", "logformat", "customlog", "accesslog", "include",
    #                           "directory", "pathlist" (existing directories, relative to the file's),
    #                           "alias" (URL-path and directory: modules/alias.py), "aliasmatch" (regex, path)
    convert: Callable[[str], Any] | None
    help: str
    nargs: tuple[int, int] = (1, 1)
    alias_of: str | None = None   # deprecated alias: warn and act as alias_of
    flag: str | None = None       # command-line flag without "--"; None: none
    metavar: str | tuple[str, ...] = "VALUE"


def _d(name: str, attr: str | None, convert: Callable[[str], Any] | None, help: str,
       kind: str = "scalar", nargs: tuple[int, int] = (1, 1), metavar: Any = "VALUE",
       alias_of: str | None = None, flag: str | None = "") -> Directive:
    if flag == "":
        flag = attr.replace("_", "-") if attr else None
    return Directive(name, attr, kind, convert, help, nargs, alias_of, flag, metavar)


_DIRECTIVE_LIST = [
    _d("Listen", "listen", None,
       "address to listen on: port, address:port, [ipv6]:port or unix:PATH, then optionally http or https "
       "(TLS on this line); repeatable",
       kind="listen", nargs=(1, 2), metavar="ADDR"),
    _d("ListenBacklog", "listen_backlog", _positive, "maximum length of the queue of pending connections", metavar="N"),
    _d("StartServers", "start_servers", _int, "number of child processes created at startup", metavar="N"),
    _d("ThreadsPerChild", "threads_per_child", _int, "worker threads in each child process", metavar="N"),
    _d("ThreadLimit", "thread_limit", _int, "upper limit on ThreadsPerChild; cannot change on restart", metavar="N"),
    _d("ServerLimit", "server_limit", _int, "upper limit on child processes; cannot change on restart", metavar="N"),
    _d("MaxRequestWorkers", "max_request_workers", _int, "maximum number of connections served at once",
       metavar="N"),
    _d("MaxClients", "max_request_workers", _int, "deprecated name of MaxRequestWorkers",
       alias_of="MaxRequestWorkers", flag=None),
    _d("MinSpareThreads", "min_spare_threads", _int, "minimum idle worker threads before more children are forked",
       metavar="N"),
    _d("MaxSpareThreads", "max_spare_threads", _int, "maximum idle worker threads before a child is stopped",
       metavar="N"),
    _d("FixedServers", "fixed_servers", _fixed_servers,
       "run exactly N children, never more or fewer (gunicorn's -w/--workers; "
       "0 = grow and shrink between MinSpareThreads and MaxSpareThreads; auto = one per CPU the "
       "process may use: its CPU affinity, bounded by a cgroup CPU quota)", metavar="N|auto"),
    _d("MaxConnectionsPerChild", "max_connections_per_child", _nonneg,
       "connections a child serves before it exits (0 = unlimited)", metavar="N"),
    _d("MaxRequestsPerChild", "max_requests_per_child", _nonneg,
       "requests a child serves before it recycles, over any number of connections (0 = unlimited; "
       "not Apache's deprecated alias of MaxConnectionsPerChild)", metavar="N"),
    _d("MaxConnectionsPerChildJitter", "max_connections_per_child_jitter", _nonneg,
       "random 0..N added to MaxConnectionsPerChild and MaxRequestsPerChild per child "
       "so children do not all restart at once", metavar="N"),
    _d("MaxMemoryPerChild", "max_memory_per_child", _size,
       "a child whose memory exceeds this many bytes (suffix K, M, G) is recycled (0 = off)", metavar="SIZE"),
    _d("MaxMemoryPerChildHard", "max_memory_per_child_hard", _size,
       "a child whose resident memory exceeds this many bytes stops at once, cutting its other requests "
       "(suffix K, M, G; 0 = off; set it above MaxMemoryPerChild)", metavar="SIZE"),
    _d("User", "user", _account("user"), "user the children run as (name or #uid); only applies when started as root",
       metavar="USER"),
    _d("Group", "group", _account("group"), "group the children run as (name or #gid)", metavar="GROUP"),
    _d("PidFile", "pid_file", _string, "file the master writes its process id to", metavar="PATH"),
    _d("ScoreBoardFile", "scoreboard_file", _string,
       "file backing the shared scoreboard (unset = anonymous shared memory)", metavar="PATH"),
    _d("Timeout", "timeout", _duration, "seconds to wait for each read or write on a connection", metavar="SECONDS"),
    _d("KeepAlive", "keep_alive", _flag, "allow persistent connections", metavar="on|off"),
    _d("KeepAliveTimeout", "keep_alive_timeout", _duration,
       "seconds to wait for the next request on a persistent connection", metavar="SECONDS"),
    _d("MaxKeepAliveRequests", "max_keep_alive_requests", _nonneg,
       "requests per persistent connection (0 = unlimited)", metavar="N"),
    _d("GracefulShutdownTimeout", "graceful_shutdown_timeout", _duration,
       "seconds a graceful stop waits for requests to finish (0 = no limit)", metavar="SECONDS"),
    _d("GracefulStopDrain", "graceful_stop_drain", _duration,
       "on a graceful stop, keep accepting this many seconds while HealthPath answers 503, so a load "
       "balancer takes the server out of rotation first (0 = stop accepting at once)", metavar="SECONDS"),
    _d("RequestTimeout", "request_timeout", _duration,
       "seconds a request may take before its worker is recycled (0 = off)", metavar="SECONDS"),
    _d("ErrorLog", "error_log", _string, "file for the error log (unset = standard error; with -k start, "
       f"{DEFAULT_ERROR_LOG} beside the PidFile, else in the current directory)", metavar="PATH"),
    _d("LogLevel", "log_level", _log_level, "error log verbosity: " + " ".join(LEVEL_NAMES), metavar="LEVEL"),
    _d("LogFormat", "log_formats", _string, "define an access log format nickname: LogFormat \"format\" nickname",
       kind="logformat", nargs=(2, 2), metavar=("FORMAT", "NICKNAME"), flag="log-format"),
    _d("CustomLog", "custom_logs", _string,
       "access log: CustomLog target format|nickname; target - is standard output; CustomLog off disables",
       kind="customlog", nargs=(1, 2), metavar=("TARGET", "FORMAT"), flag="custom-log"),
    _d("AccessLog", "custom_logs", _string, "shorthand for CustomLog target combined (- = stdout, off = none)",
       kind="accesslog", metavar="TARGET", flag="access-log"),
    _d("LimitRequestLine", "limit_request_line", _nonneg, "maximum bytes in the request line", metavar="BYTES"),
    _d("LimitRequestFields", "limit_request_fields", _nonneg, "maximum number of request header fields (0 = unlimited)",
       metavar="N"),
    _d("LimitRequestFieldSize", "limit_request_field_size", _nonneg, "maximum bytes in one request header field",
       metavar="BYTES"),
    _d("LimitRequestBody", "limit_request_body", _nonneg, "maximum bytes in a request body (0 = unlimited)",
       metavar="BYTES"),
    _d("RequestReadTimeout", "request_read_timeout", _read_timeouts,
       "how long a request head and body may take, and the rate that earns more time "
       "(mod_reqtimeout: header=20-40,MinRate=500 body=20,MinRate=500; header=0 body=0 = off)",
       kind="joined", nargs=(1, 2), metavar="SPEC"),
    _d("RequestBodyBuffer", "request_body_buffer", _size,
       "request bodies up to this size are read by the event loop before a worker sees them, so a slow "
       "upload costs no thread (0 = off; K, M suffixes)", metavar="BYTES"),
    _d("RequestBodySpool", "request_body_spool", _size,
       "request bodies over RequestBodyBuffer and up to this size (and LimitRequestBody) are received by the "
       "event loop into an unlinked temporary file before a worker sees them; larger ones are read by the "
       "worker as the app reads (0 = off; waitress spools every body)", metavar="SIZE"),
    _d("RequestBodySpoolExclude", "request_body_spool_exclude", _url_prefix,
       "URL path prefixes whose request bodies are not spooled: the app reads them from the socket as they "
       "arrive (streaming uploads); repeatable", kind="list", nargs=(1, 1000), metavar="PREFIX"),
    _d("ResponseSpool", "response_spool", _size,
       "the most of one response the event loop queues for a client that reads slower than the app writes, "
       "so the worker is free when the app is done; past it the worker waits for the client (0 = off; "
       "waitress's outbuf_high_watermark)", metavar="SIZE"),
    _d("ResponseSpoolMemory", "response_spool_memory", _size,
       "of a queued response, the bytes one connection holds in memory (the child's connections together: "
       "16 times this); the rest goes to an unlinked temporary file (waitress's outbuf_overflow)",
       metavar="SIZE"),
    _d("SpoolLimitPerChild", "spool_limit_per_child", _size,
       "the temporary files of one child's spooled request bodies and queued responses together; past it a "
       "request body is answered 503 and a response is written by its worker (0 = no bound)", metavar="SIZE"),
    _d("SpoolDirectory", "spool_directory", None,  # kind "directory": as Chdir
       "directory of the spools' temporary files, unlinked as they are made (unset = TMPDIR or /tmp; "
       "use a disk, not a tmpfs, to keep spooled bytes out of memory)", kind="directory", metavar="DIR"),
    _d("Alias", "aliases", None,
       "serve files under a directory at a URL-path prefix from the event loop, no worker involved: "
       "Alias /static/ /srv/app/static/ (one word URL=DIR on the command line); repeatable",
       kind="alias", nargs=(1, 2), metavar="URL=DIR", flag="alias"),
    _d("AliasMatch", "alias_matches", None,
       "as Alias, by a regular expression over the decoded URL path: AliasMatch ^/assets/(.*\\.css)$ "
       "/srv/app/css/$1; repeatable", kind="aliasmatch", nargs=(2, 2), metavar=("REGEX", "PATH"),
       flag="alias-match"),
    _d("Options", "follow_symlinks", _options,
       "for Alias: FollowSymLinks lets symlinks lead out of the directory (off: refused with 403)",
       kind="joined", nargs=(1, 10), metavar="FollowSymLinks", flag=None),
    _d("ExpiresActive", "expires_active", _flag, "send ExpiresDefault's Cache-Control and Expires with Alias files",
       metavar="on|off"),
    _d("ExpiresDefault", "expires_default", _expiry,
       "how long Alias files may be cached: \"access plus 1 year\", \"modification plus 1 day\", A3600",
       kind="joined", nargs=(1, 20), metavar="SPEC"),
    _d("StaticImmutableHashed", "static_immutable_hashed", _flag,
       "Alias files with a content hash in their name (Django's ManifestStaticFilesStorage: "
       "site.0123456789ab.css) are cached a year with Cache-Control: immutable", metavar="on|off"),
    _d("StaticFileCache", "static_file_cache", _positive,
       "open Alias files each child keeps open (re-checked by stat on every request)", metavar="N"),
    _d("StatusPath", "status_path", _status_path, "URL path of the server status page (unset = no status page)",
       metavar="PATH"),
    _d("StatusAllow", "status_allow", _network, "client addresses or networks allowed to see the status page",
       kind="list", nargs=(1, 1000), metavar="NET"),
    _d("StatusShowQuery", "status_show_query", _flag,
       "show request query strings in the scoreboard and on the status page (they may hold tokens)",
       metavar="on|off"),
    _d("HealthPath", "health_path", _status_path,
       "URL path answered 200 while serving, 503 while draining or stopping, without calling the app "
       "(unset = none)", metavar="PATH"),
    _d("MetricsPath", "metrics_path", _status_path,
       "URL path of the Prometheus metrics, from the scoreboard (unset = none)", metavar="PATH"),
    _d("MetricsAllow", "metrics_allow", _network, "client addresses or networks allowed to read MetricsPath",
       kind="list", nargs=(1, 1000), metavar="NET"),
    _d("AgentListen", "agent_listen", _agent_listen,
       "address:port where the master answers HAProxy's agent-check with the free capacity "
       "(up ready 37%, drain, maint) (unset = none)", metavar="ADDR:PORT"),
    _d("RemoteIPHeader", "remote_ip_header", _header_name,
       "header a trusted proxy puts the client address in: X-Forwarded-For (or similar) or Forwarded",
       metavar="HEADER"),
    _d("RemoteIPTrustedProxy", "remote_ip_trusted_proxy", _trusted_proxy,
       "proxies whose RemoteIPHeader and PROXY header are believed: addresses, networks, unix",
       kind="list", nargs=(1, 1000), metavar="NET"),
    _d("RemoteIPProxyProtocol", "remote_ip_proxy_protocol", _flag,
       "every connection starts with a PROXY protocol header (v1 or v2) from a RemoteIPTrustedProxy",
       metavar="on|off"),
    _d("UnixSocketMode", "unix_socket_mode", _file_mode, "permissions of the unix sockets of Listen unix:PATH",
       metavar="MODE"),
    _d("UnixSocketGroup", "unix_socket_group", _account("group"),
       "group of the unix sockets of Listen unix:PATH (name or #gid)", metavar="GROUP"),
    _d("SSLEngine", "ssl_engine", _flag, "TLS on every Listen line that does not say http (mod_ssl's "
       "main server); Listen ADDR https turns it on for one line", metavar="on|off"),
    _d("SSLCertificateFile", "ssl_certificate_file", None, "PEM certificate, optionally followed by its chain "
       "(gunicorn's --certfile)", kind="file", metavar="PATH"),
    _d("SSLCertificateKeyFile", "ssl_certificate_key_file", None, "PEM private key without a passphrase, "
       "read by the root master before it drops privileges (gunicorn's --keyfile)", kind="file", metavar="PATH"),
    _d("SSLCertificateChainFile", "ssl_certificate_chain_file", None,
       "PEM intermediate certificates sent after the certificate", kind="file", metavar="PATH"),
    _d("SSLCACertificateFile", "ssl_ca_certificate_file", None,
       "PEM CA certificates client certificates are verified against (gunicorn's --ca-certs)",
       kind="file", metavar="PATH"),
    _d("SSLVerifyClient", "ssl_verify_client", _verify_client,
       "client certificates: none, optional or require (gunicorn's --cert-reqs 0, 1, 2)",
       metavar="none|optional|require"),
    _d("SSLPassPhraseDialog", "ssl_pass_phrase_dialog", _pass_phrase_dialog,
       "how an encrypted SSLCertificateKeyFile's passphrase is obtained: builtin (refused: no terminal prompt) "
       "or exec:/path/to/program, run as root with servername:port and RSA|EC, printing it",
       metavar="builtin|exec:PROGRAM"),
    _d("SSLProtocol", "ssl_protocol", _ssl_protocol, "TLS versions accepted, as mod_ssl writes them "
       "(default TLSv1.2 TLSv1.3; e.g. all -TLSv1 -TLSv1.1)", kind="joined", nargs=(1, 10), metavar="PROTOCOLS"),
    _d("SSLCipherSuite", "ssl_cipher_suite", _string, "OpenSSL cipher list for TLS 1.2 (TLS 1.3's suites are "
       "OpenSSL's defaults)", metavar="CIPHERS"),
    _d("SSLHonorCipherOrder", "ssl_honor_cipher_order", _flag, "the server's cipher order wins over the client's",
       metavar="on|off"),
    _d("SSLSessionTickets", "ssl_session_tickets", _flag, "TLS session tickets (resumption without server state)",
       metavar="on|off"),
    _d("PreloadApp", "preload_app", _flag, "import the WSGI application in the master before forking",
       metavar="on|off"),
    _d("EventLoop", "event_loop", _choice("uvloop", "asyncio"), "listener event loop: uvloop or asyncio",
       metavar="uvloop|asyncio"),
    _d("AsyncRequestWorkerFactor", "async_request_worker_factor", _positive_number,
       "a child stops accepting at ThreadsPerChild + idle workers x this many connections", metavar="FACTOR"),
    _d("MaxOpenConnectionsPerChild", "max_open_connections_per_child", _positive,
       "hard cap on open connections in one child", metavar="N"),
    _d("WSGIApp", "wsgi_app", _wsgi_app, "the application to serve: module:callable, module:factory() "
       "with literal arguments, or module (module:application, else module:app)", metavar="MODULE:CALLABLE"),
    _d("Chdir", "chdir", None,  # kind "directory": relative to its file, resolved in _apply
       "directory to change to before the app is imported, in the master and every child; relative "
       "paths in the configuration are relative to its file (gunicorn's --chdir)",
       kind="directory", metavar="DIR"),
    _d("PythonPath", "python_path", None,  # kind "pathlist": as Chdir
       "directories put first on sys.path before the app is imported, separated by commas or colons; "
       "repeatable (gunicorn's --pythonpath)", kind="pathlist", nargs=(1, 1000), metavar="DIRS"),
    _d("Include", None, None, "read another configuration file (glob allowed; a missing file is an error)",
       kind="include", metavar="PATH", flag=None),
    _d("IncludeOptional", None, None, "like Include, but no error when nothing matches",
       kind="include", metavar="PATH", flag=None),
]

DIRECTIVES: dict[str, Directive] = {d.name: d for d in _DIRECTIVE_LIST}
# The flags people already type for gunicorn and waitress, as aliases.
FLAG_ALIASES: dict[str, tuple[str, ...]] = {
    "FixedServers": ("-w", "--workers"),
    "ThreadsPerChild": ("--threads",),
    "Listen": ("-b", "--bind"),
    "PythonPath": ("--pythonpath",),
    "SSLCertificateFile": ("--certfile",),
    "SSLCertificateKeyFile": ("--keyfile",),
    "SSLCACertificateFile": ("--ca-certs",),
    "SSLVerifyClient": ("--cert-reqs",),
    "SSLCipherSuite": ("--ciphers",),
    "Alias": ("--static",),
}
_BY_LOWER = {name.lower(): d for name, d in DIRECTIVES.items()}
# Overrides may name a directive any way a caller finds natural:
# "ThreadsPerChild", "threads_per_child", "threads-per-child", "--threads-per-child".
_BY_LOOSE = {name.lower(): d for name, d in DIRECTIVES.items()}
_BY_LOOSE.update({d.flag.replace("-", ""): d for d in _DIRECTIVE_LIST if d.flag})
# The directive a Config field is set through in from_kwargs().
_BY_ATTR = {d.attr: d for d in reversed(_DIRECTIVE_LIST) if d.attr and not d.alias_of and d.kind != "accesslog"}


def _loose(name: str) -> str:
    return name.lstrip("-").replace("-", "").replace("_", "").lower()


def _default_text(d: Directive) -> str:
    if d.attr is None:
        return "none"
    if d.kind == "listen":
        return _listen_arg(*DEFAULT_LISTEN)
    if d.kind in ("customlog", "accesslog"):
        return "no access log"
    if d.kind == "logformat":
        return "common and combined"
    if d.kind in ("alias", "aliasmatch"):
        return "none"
    value = getattr(_DEFAULTS, d.attr)
    if isinstance(value, ReadTimeouts):
        return reqtimeout.format_spec(value)
    if d.convert is _file_mode:
        return f"{value:04o}"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(value) or "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_DEFAULTS = Config()


# --------------------------------------------------------------------------
# Reading files.

def split_words(line: str) -> list[str]:
    """Split one logical line into words the way Apache's ap_getword_conf does.

    Words are separated by whitespace; a word opening with " or ' runs to the
    matching quote, inside which a backslash escapes that quote.
    """
    words: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return words
        q = line[i]
        if q == '"' or q == "'":
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise _Bad(f"missing closing {q} quote")
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == q:
                    buf.append(q)
                    i += 2
                elif c == q:
                    i += 1
                    break
                else:
                    buf.append(c)
                    i += 1
            words.append("".join(buf))
        else:
            j = i
            while j < n and not line[j].isspace():
                j += 1
            words.append(line[i:j])
            i = j


def logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Yield (first physical line number, stripped line) for directive lines.

    A backslash immediately before the newline continues the line (as in
    Apache, not an escaped one: "\\\\" ends a line). Only whole-line # comments
    exist, as in Apache.
    """
    start, parts = 0, []
    for no, raw in enumerate(text.splitlines(), 1):
        if not parts:
            start = no
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            parts.append(raw[:-1])
            continue
        parts.append(raw)
        line = "".join(parts).strip()
        parts = []
        if line and not line.startswith("#"):
            yield start, line
    if parts:
        line = "".join(parts).strip()
        if line and not line.startswith("#"):
            yield start, line


@dataclass
class _Loc:
    """Where a directive came from, for messages."""
    error_prefix: str     # "Syntax error on line 3 of x.conf" / "command line"
    warn_prefix: str      # "line 3 of x.conf" / "command line"
    label: str            # directive as the user wrote it: "ThreadsPerChild" / "--threads-per-child"
    path: str | None = None

    def error(self, msg: str) -> ConfigError:
        return ConfigError(f"{self.error_prefix}: {self.label}: {msg}")


def _file_loc(path: str, line: int, label: str) -> _Loc:
    return _Loc(f"Syntax error on line {line} of {path}", f"line {line} of {path}", label, path)


class _Builder:
    """Accumulates directives into a Config; knows nothing about files."""

    def __init__(self) -> None:
        self.cfg = Config()
        self.warnings: list[str] = []
        # Repeatable fields already cleared in the current phase: the first
        # Listen replaces the default, the first --listen replaces the file's.
        self.reset_done: set[str] = set()
        self.logs: list[tuple[_Loc, str, str]] = []  # (where, target, format|nickname)
        self.explicit: set[str] = set()  # Config fields some directive set
        self.where: dict[str, _Loc] = {}  # Config field -> where it was last set
        self.listen_where: dict[tuple[str, int], _Loc] = {}  # Listen address -> its line

    def new_phase(self) -> None:
        self.reset_done.clear()

    def _first_in_phase(self, attr: str) -> bool:
        if attr in self.reset_done:
            return False
        self.reset_done.add(attr)
        return True

    def apply(self, d: Directive, args: Sequence[str], loc: _Loc) -> None:
        lo, hi = d.nargs
        if not lo <= len(args) <= hi:
            raise loc.error(_arg_count_message(d, args))
        if d.alias_of:
            self.warnings.append(f"{loc.warn_prefix}: {d.name} is deprecated, use {d.alias_of} instead.")
        try:
            self._apply(d, args, loc)
        except _Bad as e:
            raise loc.error(str(e)) from None
        if d.attr:
            self.explicit.add(d.attr)
            self.where[d.attr] = loc

    def _apply(self, d: Directive, args: Sequence[str], loc: _Loc) -> None:
        cfg, kind = self.cfg, d.kind
        if kind == "scalar":
            setattr(cfg, d.attr, d.convert(args[0]))
        elif kind == "joined":  # one value given as several words (RequestReadTimeout)
            setattr(cfg, d.attr, d.convert(" ".join(args)))
        elif kind == "listen":
            if len(args) == 1 and len(args[0].split()) == 2:  # --listen "ADDR https"
                args = args[0].split()
            if len(args) == 2 and args[1].lower() not in ("http", "https"):
                raise _Bad(f"protocol {args[1]!r} is not supported (http or https)")
            addr = parse_listen(args[0])
            if len(args) == 2:
                if is_unix(addr[0]) and args[1].lower() == "https":
                    raise _Bad("https on a unix socket is not supported: a local proxy speaks plain HTTP to it")
                cfg.listen_protocols[addr] = args[1].lower()
            if self._first_in_phase("listen"):
                cfg.listen = []
            if addr in cfg.listen and (addr[1] != 0 or is_unix(addr[0])):  # port 0: each gets its own free port
                raise _Bad(f"Cannot define multiple Listeners on the same IP:port ({args[0]})")
            cfg.listen.append(addr)
            self.listen_where[addr] = loc
        elif kind == "file":  # relative to the configuration file, checked when TLS is built
            setattr(cfg, d.attr, os.path.join(_base_dir(loc), _string(args[0])))
        elif kind == "directory":
            setattr(cfg, d.attr, _directory(args[0], _base_dir(loc)))
        elif kind == "pathlist":
            words = [w for a in args for w in _PATH_LIST_SEP.split(a) if w]
            if not words:
                raise _Bad("names no directory")
            values = [_directory(w, _base_dir(loc)) for w in words]
            if self._first_in_phase(d.attr):
                setattr(cfg, d.attr, [])
            getattr(cfg, d.attr).extend(v for v in values if v not in getattr(cfg, d.attr))
        elif kind == "list":
            values = [d.convert(a) for a in args]
            if self._first_in_phase(d.attr):
                setattr(cfg, d.attr, [])
            getattr(cfg, d.attr).extend(values)
        elif kind == "alias":
            try:
                pair = alias.parse_alias(list(args), _base_dir(loc))
            except ValueError as e:
                raise _Bad(str(e)) from None
            if self._first_in_phase("aliases"):
                cfg.aliases = []
            if any(url == pair[0] for url, _ in cfg.aliases):
                raise _Bad(f"{pair[0]} is already an Alias")
            cfg.aliases.append(pair)
            if not os.path.isdir(pair[1]):
                self.warnings.append(f"{loc.warn_prefix}: Alias {pair[0]}: {pair[1]} is not a directory (yet): "
                                     "its requests get 404 until it is")
        elif kind == "aliasmatch":
            try:
                pair = alias.parse_alias_match(args[0], args[1], _base_dir(loc))
            except ValueError as e:
                raise _Bad(str(e)) from None
            if self._first_in_phase("alias_matches"):
                cfg.alias_matches = []
            cfg.alias_matches.append(pair)
        elif kind == "logformat":
            cfg.log_formats[_string(args[1])] = args[0]
        elif kind in ("customlog", "accesslog"):
            target = _string(args[0])
            if kind == "customlog" and len(args) == 1 and target.lower() != "off":
                raise _Bad("takes two arguments, a target (file or -) and a format or nickname")
            if self._first_in_phase("custom_logs") or target.lower() == "off":
                self.logs = []
            if target.lower() != "off":
                self.logs.append((loc, target, args[1] if kind == "customlog" else "combined"))
        else:  # pragma: no cover - registry and kinds are defined together
            raise AssertionError(kind)

    def finish(self, startup: bool = True, check_paths: bool = False) -> tuple[Config, list[str]]:
        cfg = self.cfg
        if check_paths:
            self._check_unix_dirs()
        cfg.custom_logs = [(target, _resolve_format(cfg, fmt, loc)) for loc, target, fmt in self.logs]
        cfg.listen_explicit = "listen" in self.explicit
        derive_defaults(cfg, self.explicit)
        _check_remote_ip(cfg, self.where)
        self._build_tls()
        self.warnings.extend(check_config(cfg, startup))
        cfg.warnings = self.warnings
        return cfg, self.warnings


    def _build_tls(self) -> None:
        """The SSLContext, when some listener speaks TLS: every file read and
        checked now (by the root master, before the privilege drop; on each
        restart; by -t), an error naming the directive's file and line."""
        cfg = self.cfg
        cfg.ssl_context = None
        addresses = cfg.listen if cfg.listen_explicit else []
        if not cfg.ssl_engine and not any(tls.speaks_tls(cfg, a) for a in addresses):
            return
        if cfg.remote_ip_proxy_protocol:
            raise self._tls_loc("remote_ip_proxy_protocol", "RemoteIPProxyProtocol").error(
                "a PROXY header before TLS is not supported yet; terminate TLS at the proxy")
        try:
            cfg.ssl_context, warnings = tls.build_context(cfg)
        except tls.TLSError as exc:
            raise self._tls_loc(exc.attr, _BY_ATTR[exc.attr].name).error(str(exc)) from None
        self.warnings.extend(warnings)

    def _tls_loc(self, attr: str, name: str) -> _Loc:
        """Where to point for a TLS problem: the directive's line; for a
        missing setting that SSLEngine did not ask for, the https Listen line."""
        if attr not in self.where and attr == "ssl_engine":
            https = [a for a, p in self.cfg.listen_protocols.items() if p == "https"]
            if https and https[0] in self.listen_where:
                return self.listen_where[https[0]]
        return self.where.get(attr) or _Loc("configuration", "configuration", name)

    def _check_unix_dirs(self) -> None:
        """-t: the master must be able to create each unix socket, else the
        start fails later at bind() without naming the line."""
        for addr in self.cfg.listen:
            if is_unix(addr[0]):
                problem = unix_dir_problem(addr[0][len(UNIX_PREFIX):])
                if problem:
                    raise self.listen_where[addr].error(f"{addr[0]}: {problem}")


def unix_dir_problem(path: str) -> str | None:
    """Why the master could not create a unix socket at ``path``, or None."""
    d = os.path.dirname(path)
    if not os.path.exists(d):
        return f"its directory {d} does not exist"
    if not os.path.isdir(d):
        return f"{d} is not a directory"
    if not os.access(d, os.W_OK | os.X_OK):
        import getpass  # only this rare failure pays for it

        return (f"its directory {d} is not writable by {getpass.getuser()}, the user the master runs as "
                f"(it creates the socket before dropping privileges)")
    return None


def _base_dir(loc: _Loc) -> str:
    """What a relative path given at ``loc`` is relative to."""
    return os.path.dirname(os.path.abspath(loc.path)) if loc.path else os.getcwd()


def _check_remote_ip(cfg: Config, where: dict[str, _Loc]) -> None:
    """mod_remoteip believes every peer when no proxy is listed; here that is
    a mistake: trusting loopback or the unix socket is a choice to write down."""
    if cfg.remote_ip_trusted_proxy:
        return
    for attr, name, on in (("remote_ip_header", "RemoteIPHeader", cfg.remote_ip_header),
                           ("remote_ip_proxy_protocol", "RemoteIPProxyProtocol", cfg.remote_ip_proxy_protocol)):
        if on:
            loc = where.get(attr) or _Loc("configuration", "configuration", name)
            raise loc.error("needs RemoteIPTrustedProxy: list the proxies to believe "
                            "(e.g. RemoteIPTrustedProxy 127.0.0.1 ::1 unix); no peer is trusted by default")


def _resolve_format(cfg: Config, fmt: str, loc: _Loc) -> str:
    # Like mod_log_config: a nickname is resolved after the whole
    # configuration is read, so LogFormat may follow CustomLog.
    if fmt in cfg.log_formats:
        return cfg.log_formats[fmt]
    if "%" not in fmt and not any(c.isspace() for c in fmt):
        known = ", ".join(sorted(cfg.log_formats))
        raise loc.error(f"{fmt!r} is neither a LogFormat nickname ({known}) nor a format string")
    return fmt


def _arg_count_message(d: Directive, args: Sequence[str]) -> str:
    lo, hi = d.nargs
    words = {1: "one argument", 2: "two arguments"}
    if lo == hi:
        want = words.get(lo, f"{lo} arguments")
    elif hi >= 1000:
        want = f"at least {words.get(lo, lo)}"
    else:
        want = f"{words.get(lo, lo)} or {words.get(hi, hi)}"
    msg = f"takes {want}, got {len(args)}"
    if any(a.startswith("#") for a in args):
        msg += " (comments must be on a line of their own)"
    return msg


def _suggest(name: str) -> str:
    names = {n.lower(): n for n in DIRECTIVES}
    close = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.6)
    return f"; did you mean '{names[close[0]]}'?" if close else ""


class _FileReader:
    def __init__(self, builder: _Builder) -> None:
        self.builder = builder
        self.stack: list[str] = []  # real paths being read, to detect include loops

    def read(self, path: str) -> None:
        real = os.path.realpath(path)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"Could not open configuration file {path}: {e.strerror or e}") from None
        self.stack.append(real)
        try:
            self._read_text(path, text)
        finally:
            self.stack.pop()

    def _read_text(self, path: str, text: str) -> None:
        for no, line in logical_lines(text):
            try:
                words = split_words(line)
            except _Bad as e:
                raise ConfigError(f"Syntax error on line {no} of {path}: {e}") from None
            name, args = words[0], words[1:]
            if name.startswith("<"):
                raise ConfigError(f"Syntax error on line {no} of {path}: "
                                  f"sections such as {name}...> are not supported by mpmserver")
            d = _BY_LOWER.get(name.lower())
            if d is None:
                raise ConfigError(f"Syntax error on line {no} of {path}: "
                                  f"Invalid directive '{name}', perhaps misspelled{_suggest(name)}")
            loc = _file_loc(path, no, d.name)
            if d.kind == "include":
                if len(args) != 1:
                    raise loc.error(_arg_count_message(d, args))
                self._include(args[0], optional=d.name == "IncludeOptional", loc=loc)
            else:
                self.builder.apply(d, args, loc)

    def _include(self, pattern: str, optional: bool, loc: _Loc) -> None:
        import glob  # only configurations with Include pay for it

        base = os.path.dirname(loc.path or "")
        target = os.path.join(base, pattern) if not os.path.isabs(pattern) else pattern
        if _GLOB_MAGIC.search(target):
            paths = sorted(glob.glob(target))
            if not paths and not optional:
                raise loc.error(f"no file matches the wildcard {target!r} (use IncludeOptional to allow none)")
        elif os.path.exists(target):
            paths = [target]
        elif optional:
            paths = []
        else:
            raise loc.error(f"could not open {target}: No such file or directory")
        for p in paths:
            self._include_one(p, optional, loc)

    def _include_one(self, path: str, optional: bool, loc: _Loc) -> None:
        if os.path.isdir(path):
            # As in Apache: a directory means every file in it, in sorted order.
            for entry in sorted(os.listdir(path)):
                self._include_one(os.path.join(path, entry), optional, loc)
            return
        real = os.path.realpath(path)
        if real in self.stack:
            chain = " -> ".join(self.stack[self.stack.index(real):] + [real])
            raise loc.error(f"include loop: {chain}")
        self.read(path)


# --------------------------------------------------------------------------
# Defaults that follow from what was set.

# Apache's worker MPM defaults are multiples of its ThreadsPerChild of 25:
# MaxRequestWorkers = ServerLimit x 25, MinSpareThreads 3 x 25, MaxSpareThreads 10 x 25.
_MIN_SPARE_CHILDREN, _MAX_SPARE_CHILDREN = 3, 10


def derive_defaults(cfg: Config, explicit: set[str]) -> None:
    """Fill the pool sizes nobody set from those that were set, so that
    setting ThreadsPerChild alone (or FixedServers) gives a consistent pool
    instead of clamping warnings. Fields in ``explicit`` are left alone."""
    tpc = max(1, cfg.threads_per_child)
    done = set(explicit)

    def default(attr: str, value: int) -> None:
        if attr not in done:
            setattr(cfg, attr, value)
            done.add(attr)

    n = cfg.fixed_servers
    if n:
        # Room for a graceful restart: the new N start while the old N finish.
        default("server_limit", min(HARD_LIMIT, max(cfg.server_limit, 2 * n)))
        default("start_servers", n)
        default("max_request_workers", n * tpc)
        # Unused by a fixed pool; kept consistent so no clamping warning fires.
        default("min_spare_threads", 1)
        default("max_spare_threads", max(n * tpc, tpc + 2))
    if "threads_per_child" in explicit:
        default("thread_limit", max(_DEFAULTS.thread_limit, tpc))
        default("max_request_workers", cfg.server_limit * tpc)
        default("min_spare_threads", _MIN_SPARE_CHILDREN * tpc)
        default("max_spare_threads", _MAX_SPARE_CHILDREN * tpc)


# --------------------------------------------------------------------------
# Validation and clamping, in worker_check_config()'s order.

def pool_summary(cfg: Any) -> str:
    """The pool in one phrase for the start-up line: children x threads."""
    tpc = cfg.threads_per_child

    def children(n: int) -> str:
        return f"{n} {'child' if n == 1 else 'children'}"

    if cfg.fixed_servers:
        return f"{children(cfg.fixed_servers)} x {tpc} threads (fixed)"
    return (f"{children(cfg.start_servers)} x {tpc} threads, up to {children(daemons_limit(cfg))} "
            f"(MinSpareThreads {cfg.min_spare_threads}, MaxSpareThreads {cfg.max_spare_threads})")


def daemons_limit(cfg: Any) -> int:
    """Most children active at once: MaxRequestWorkers / ThreadsPerChild, at least 1."""
    return max(1, cfg.max_request_workers // cfg.threads_per_child)


# warn(startup wording, restart wording): see check_config().
_Warn = Callable[[str, str], None]


def check_config(cfg: Config, startup: bool = True) -> list[str]:
    """Clamp pool sizes in place as httpd's worker MPM does; return its warnings.

    startup=True gives Apache's console wording ("WARNING: ..."), False the
    wording it logs on a restart.
    """
    w: list[str] = []

    def warn(first: str, restart: str) -> None:
        w.append(first if startup else restart)

    _clamp_limits(cfg, warn)
    _clamp_threads_per_child(cfg, warn)
    _clamp_max_request_workers(cfg, warn)
    _clamp_spares_and_start(cfg, warn)
    _clamp_fixed_servers(cfg, warn)
    _check_memory_limits(cfg, warn)
    return w


def _check_memory_limits(cfg: Config, warn: _Warn) -> None:
    soft, hard = cfg.max_memory_per_child, cfg.max_memory_per_child_hard
    if soft and hard and hard <= soft:
        text = (f"MaxMemoryPerChildHard {hard >> 20} MB is not above MaxMemoryPerChild {soft >> 20} MB: "
                "a child past it stops at once instead of being recycled gracefully; set it higher")
        warn(f"WARNING: {text}", text)


def _clamp_limits(cfg: Config, warn: _Warn) -> None:
    for attr, name, unit in (("server_limit", "ServerLimit", "servers"), ("thread_limit", "ThreadLimit", "threads")):
        n = getattr(cfg, attr)
        if n > HARD_LIMIT:
            warn(f"WARNING: {name} of {n} exceeds compile-time limit of {HARD_LIMIT} {unit}, "
                 f"decreasing to {HARD_LIMIT}.",
                 f"{name} of {n} exceeds compile-time limit of {HARD_LIMIT}, decreasing to match")
            setattr(cfg, attr, HARD_LIMIT)
        elif n < 1:
            warn(f"WARNING: {name} of {n} not allowed, increasing to 1.",
                 f"{name} of {n} not allowed, increasing to 1")
            setattr(cfg, attr, 1)


def _clamp_threads_per_child(cfg: Config, warn: _Warn) -> None:
    tpc, tl = cfg.threads_per_child, cfg.thread_limit
    if tpc > tl:
        warn(f"WARNING: ThreadsPerChild of {tpc} exceeds ThreadLimit of {tl} threads, decreasing to {tl}. "
             "To increase, please see the ThreadLimit directive.",
             f"ThreadsPerChild of {tpc} exceeds ThreadLimit of {tl}, decreasing to match")
        cfg.threads_per_child = tl
    elif tpc < 1:
        warn(f"WARNING: ThreadsPerChild of {tpc} not allowed, increasing to 1.",
             f"ThreadsPerChild of {tpc} not allowed, increasing to 1")
        cfg.threads_per_child = 1


def _clamp_max_request_workers(cfg: Config, warn: _Warn) -> None:
    tpc, mrw = cfg.threads_per_child, cfg.max_request_workers
    if mrw < tpc:
        warn(f"WARNING: MaxRequestWorkers of {mrw} is less than ThreadsPerChild of {tpc}, increasing to {tpc}. "
             "MaxRequestWorkers must be at least as large as the number of threads in a single server.",
             f"MaxRequestWorkers of {mrw} is less than ThreadsPerChild of {tpc}, increasing to match")
        cfg.max_request_workers = mrw = tpc

    limit = daemons_limit(cfg)
    if mrw % tpc:
        m = limit * tpc
        warn(f"WARNING: MaxRequestWorkers of {mrw} is not an integer multiple of ThreadsPerChild of {tpc}, "
             f"decreasing to nearest multiple {m}, for a maximum of {limit} servers.",
             f"MaxRequestWorkers of {mrw} is not an integer multiple of ThreadsPerChild of {tpc}, "
             f"decreasing to nearest multiple {m}")
        cfg.max_request_workers = mrw = m

    sl = cfg.server_limit
    if limit > sl:
        warn(f"WARNING: MaxRequestWorkers of {mrw} would require {limit} servers and would exceed ServerLimit "
             f"of {sl}, decreasing to {sl * tpc}. To increase, please see the ServerLimit directive.",
             f"MaxRequestWorkers of {mrw} would require {limit} servers and exceed ServerLimit of {sl}, "
             f"decreasing to {sl * tpc}")
        cfg.max_request_workers = sl * tpc


def _clamp_spares_and_start(cfg: Config, warn: _Warn) -> None:
    tpc, limit = cfg.threads_per_child, daemons_limit(cfg)
    if cfg.start_servers < 1:
        warn(f"WARNING: StartServers of {cfg.start_servers} not allowed, increasing to 1.",
             f"StartServers of {cfg.start_servers} not allowed, increasing to 1")
        cfg.start_servers = 1
    if cfg.min_spare_threads < 1:
        warn(f"WARNING: MinSpareThreads of {cfg.min_spare_threads} not allowed, increasing to 1 to avoid "
             "almost certain server failure. Please read the documentation.",
             f"MinSpareThreads of {cfg.min_spare_threads} not allowed, increasing to 1")
        cfg.min_spare_threads = 1

    # The next two are done silently in Apache's worker_run(); we say so,
    # because a silently ignored setting is a support question later.
    floor = cfg.min_spare_threads + tpc + 1
    if cfg.max_spare_threads < floor:
        mst = cfg.max_spare_threads
        warn(f"WARNING: MaxSpareThreads of {mst} is less than MinSpareThreads of {cfg.min_spare_threads} + "
             f"ThreadsPerChild of {tpc} + 1, increasing to {floor}.",
             f"MaxSpareThreads of {mst} is less than MinSpareThreads + ThreadsPerChild + 1, increasing to {floor}")
        cfg.max_spare_threads = floor
    if cfg.start_servers > limit:
        ss = cfg.start_servers
        warn(f"WARNING: StartServers of {ss} exceeds MaxRequestWorkers / ThreadsPerChild = {limit} servers, "
             f"decreasing to {limit}.",
             f"StartServers of {ss} exceeds MaxRequestWorkers / ThreadsPerChild, decreasing to {limit}")
        cfg.start_servers = limit


def _clamp_fixed_servers(cfg: Config, warn: _Warn) -> None:
    n = cfg.fixed_servers
    if not n:
        return
    limit = min(daemons_limit(cfg), cfg.server_limit)
    if n > limit:
        warn(f"WARNING: FixedServers of {n} exceeds MaxRequestWorkers / ThreadsPerChild (and ServerLimit) "
             f"= {limit} servers, decreasing to {limit}.",
             f"FixedServers of {n} exceeds MaxRequestWorkers / ThreadsPerChild, decreasing to {limit}")
        cfg.fixed_servers = n = limit
    if cfg.start_servers != n:
        warn(f"WARNING: StartServers of {cfg.start_servers} differs from FixedServers of {n}, using {n}.",
             f"StartServers of {cfg.start_servers} differs from FixedServers, using {n}")
        cfg.start_servers = n


def reconcile_restart(old: Config, new: Config) -> list[str]:
    """Keep old's ServerLimit and ThreadLimit in new (they size the scoreboard).

    Mutates new in place, re-clamps what depends on them, returns warnings
    in Apache's restart wording.
    """
    w: list[str] = []
    for attr, name in (("server_limit", "ServerLimit"), ("thread_limit", "ThreadLimit")):
        before, after = getattr(old, attr), getattr(new, attr)
        if after != before:
            w.append(f"changing {name} to {after} from original value of {before} not allowed during restart")
            setattr(new, attr, before)
    if w:
        w.extend(check_config(new, startup=False))
        new.warnings.extend(w)
    return w


# --------------------------------------------------------------------------
# Entry points.

def _lookup_override(name: str) -> Directive:
    d = _BY_LOOSE.get(_loose(name))
    if d is not None and d.kind == "include":
        raise ConfigError(f"command line: {d.name} can only be used in a configuration file")
    if d is None:
        raise ConfigError(f"command line: unknown directive {name!r}{_suggest(_loose(name))}")
    return d


def load(path: str | None, overrides: Sequence[tuple[str, Sequence[str]]] = (),
         check_paths: bool = False) -> tuple[Config, list[str]]:
    """Read path (if any), apply overrides, validate and clamp. check_paths
    (-t) also checks what the start would find on disk: the directories of
    unix sockets.

    An override of a repeatable directive (Listen, CustomLog, StatusAllow)
    replaces the file's values instead of adding to them.
    """
    b = _Builder()
    if path is not None:
        _FileReader(b).read(path)
        b.cfg.config_file = os.path.abspath(path)
    b.new_phase()
    for name, args in overrides:
        d = _lookup_override(name)
        label = f"--{d.flag}" if d.flag else d.name
        b.apply(d, list(args), _Loc("command line", "command line", label))
    return b.finish(check_paths=check_paths)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one --kebab-case flag per directive (all default None)."""
    group = parser.add_argument_group(
        "configuration directives", "each overrides the directive of the same name in the configuration file")
    for d in _DIRECTIVE_LIST:
        if not d.flag:
            continue
        # argparse %-formats help strings; log formats are full of %.
        help = f"{d.name}: {d.help} (default: {_default_text(d)})".replace("%", "%%")
        kw: dict[str, Any] = {"dest": d.flag.replace("-", "_"), "default": None, "help": help,
                              "metavar": d.metavar}
        if d.kind in ("logformat", "customlog", "aliasmatch"):
            kw["nargs"] = 2
            kw["action"] = "append"
        elif d.kind == "list":
            kw["nargs"] = "+"
        elif d.kind in ("listen", "accesslog", "pathlist", "alias"):
            kw["action"] = "append"
        group.add_argument(f"--{d.flag}", *FLAG_ALIASES.get(d.name, ()), **kw)


def overrides_from_args(ns: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The (directive, args) pairs for every flag given on the command line."""
    out: list[tuple[str, list[str]]] = []
    for d in _DIRECTIVE_LIST:
        if not d.flag:
            continue
        value = getattr(ns, d.flag.replace("-", "_"), None)
        if value is None:
            continue
        if d.kind in ("logformat", "customlog", "aliasmatch"):
            out.extend((d.name, list(v)) for v in value)
        elif d.kind in ("listen", "accesslog", "pathlist", "alias"):
            out.extend((d.name, [v]) for v in value)
        elif d.kind == "list":
            out.append((d.name, list(value)))
        else:
            out.append((d.name, [str(value)]))
    return out


def _kwarg_args(attr: str, value: Any) -> list[list[str]]:
    """Python value for a Config field -> directive argument lists."""
    if attr == "listen":
        items = [value] if isinstance(value, (str, tuple)) else list(value)
        return [[v if isinstance(v, str) else _listen_arg(str(v[0]), int(v[1]))] for v in items]
    if attr == "aliases":
        items = value.items() if isinstance(value, dict) else value
        return [[str(url), os.fspath(directory)] for url, directory in items]
    if attr == "alias_matches":
        return [[str(regex), os.fspath(target)] for regex, target in value]
    if attr == "follow_symlinks" and isinstance(value, bool):
        return [["FollowSymLinks" if value else "None"]]
    if attr == "expires_default" and isinstance(value, expires.Expiry):
        return [[("M" if value.from_modification else "A") + str(value.seconds)]]
    if attr == "custom_logs":
        return [[t, f] for t, f in value] or [["off"]]
    if attr == "log_formats":
        return [[f, nick] for nick, f in value.items()]
    if attr == "unix_socket_mode" and isinstance(value, int) and not isinstance(value, bool):
        return [[f"{value:04o}"]]
    if attr in ("status_allow", "metrics_allow", "remote_ip_trusted_proxy", "python_path",
                "request_body_spool_exclude"):
        return [[value] if isinstance(value, str) else [str(v) for v in value]]
    if isinstance(value, bool):
        return [["On" if value else "Off"]]
    if isinstance(value, float):
        if not math.isfinite(value):
            return [[str(value)]]  # rejected by the converter with a clear message
        return [[f"{value:.6f}".rstrip("0").rstrip(".")]] if value >= 0 else [[str(value)]]
    return [[str(value)]]


def from_kwargs(**directives: Any) -> Config:
    """Build a validated, clamped Config from field names, for the Python API.

    from_kwargs(threads_per_child=4, listen=[("127.0.0.1", 0)]). Warnings are
    in the returned Config's .warnings. Unknown names raise TypeError.
    """
    b = _Builder()
    for name, value in directives.items():
        d = _BY_ATTR.get(name)
        if d is None:
            close = difflib.get_close_matches(name, list(_BY_ATTR), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"from_kwargs() got an unexpected keyword argument {name!r}{hint}")
        if value is None:  # None means "the default", as for the CLI flags
            continue
        for args in _kwarg_args(name, value):
            b.apply(d, args, _Loc("from_kwargs", "from_kwargs", name))
    cfg, _ = b.finish()
    return cfg
