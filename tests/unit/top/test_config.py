"""Tests for mpmserver.config: parsing, errors, clamping, overrides."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from mpmserver import config as C
from mpmserver.config import Config, ConfigError, load
from mpmserver.logs import COMBINED, COMMON

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "conf" / "mpmserver.conf"


def write(tmp_path: Path, text: str, name: str = "mpm.conf") -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def parse(tmp_path: Path, text: str) -> tuple[Config, list[str]]:
    return load(str(write(tmp_path, text)))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        parse(tmp_path, text)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


# --- defaults ---------------------------------------------------------------

def test_defaults_are_apache_worker_defaults():
    cfg, warnings = load(None)
    assert warnings == []
    assert cfg.listen == [("127.0.0.1", 8000)]
    assert (cfg.listen_backlog, cfg.start_servers, cfg.threads_per_child, cfg.thread_limit,
            cfg.server_limit, cfg.max_request_workers, cfg.min_spare_threads,
            cfg.max_spare_threads) == (511, 3, 25, 64, 16, 400, 75, 250)
    assert (cfg.timeout, cfg.keep_alive, cfg.keep_alive_timeout, cfg.max_keep_alive_requests) == (60.0, True, 5.0, 100)
    assert (cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size,
            cfg.limit_request_body) == (8190, 100, 8190, 1 << 30)
    assert cfg.log_formats["common"] == '%h %l %u %t "%r" %>s %b'
    assert cfg.custom_logs == [] and cfg.error_log is None and cfg.log_level == "warn"
    assert cfg.status_allow == ["127.0.0.1", "::1"] and cfg.event_loop == "uvloop"
    assert C.daemons_limit(cfg) == 16


# --- syntax ---------------------------------------------------------------

def test_names_are_case_insensitive_and_values_typed(tmp_path):
    cfg, _ = parse(tmp_path, "threadsperchild 5\nKEEPALIVE off\nkeepalivetimeout 250ms\n"
                             "MaxMemoryPerChild 512M\nPreloadApp ON\nEventLoop AsyncIO\nLogLevel trace3\n"
                             "Timeout 2.5\nMaxRequestWorkers 50\n")
    assert cfg.threads_per_child == 5
    assert cfg.keep_alive is False and cfg.preload_app is True
    assert cfg.keep_alive_timeout == pytest.approx(0.25) and cfg.timeout == 2.5
    assert cfg.max_memory_per_child == 512 * 1024 * 1024
    assert cfg.event_loop == "asyncio" and cfg.log_level == "debug"


def test_comments_blank_lines_and_indentation(tmp_path):
    cfg, _ = parse(tmp_path, "# comment\n\n   # indented comment\n\tThreadsPerChild 5\n  \nMaxRequestWorkers 50\n")
    assert cfg.threads_per_child == 5


def test_trailing_comment_is_not_a_comment_like_apache(tmp_path):
    msg = error_of(tmp_path, "ThreadsPerChild 5 # five threads\n")
    assert "line 1 of" in msg and "ThreadsPerChild: takes one argument, got 4" in msg
    assert "comments must be on a line of their own" in msg


def test_quoting(tmp_path):
    cfg, _ = parse(tmp_path, "LogFormat \"%h \\\"%r\\\" %>s\" mine\nCustomLog '/tmp/a log' mine\n"
                             "CustomLog \"-\" 'it\\'s %h'\nErrorLog \"/tmp/with space.log\"\n")
    assert cfg.log_formats["mine"] == '%h "%r" %>s'
    assert cfg.custom_logs[0] == ("/tmp/a log", '%h "%r" %>s')
    assert cfg.custom_logs[1] == ("-", "it's %h")
    assert cfg.error_log == "/tmp/with space.log"


def test_adjacent_quoted_words_split(tmp_path):
    assert C.split_words("""a "b c"'d' e""") == ["a", "b c", "d", "e"]
    assert C.split_words(r'"x \"y\" \n"') == [r'x "y" \n']


def test_unterminated_quote_is_an_error(tmp_path):
    msg = error_of(tmp_path, "\nErrorLog \"/tmp/x\n")
    assert msg == f"Syntax error on line 2 of {tmp_path / 'mpm.conf'}: missing closing \" quote"


def test_continuation_lines(tmp_path):
    cfg, _ = parse(tmp_path, "StatusAllow 10.0.0.0/8 \\\n   192.168.0.0/16 \\\n ::1\nThreadsPerChild 5\n"
                             "MaxRequestWorkers 50\n")
    assert cfg.status_allow == ["10.0.0.0/8", "192.168.0.0/16", "::1"]
    assert cfg.threads_per_child == 5


def test_continuation_error_reports_first_line(tmp_path):
    msg = error_of(tmp_path, "# x\nThreadsPerChild \\\n abc\n")
    assert msg.startswith("Syntax error on line 2 of ")


def test_backslash_followed_by_space_does_not_continue(tmp_path):
    msg = error_of(tmp_path, "ThreadsPerChild 5 \\ \nMaxRequestWorkers 50\n")
    assert "takes one argument, got 2" in msg


# --- error messages -------------------------------------------------------

def test_bad_number_message_names_file_line_directive(tmp_path):
    msg = error_of(tmp_path, "\n\nThreadsPerChild abc\n")
    assert msg == f"Syntax error on line 3 of {tmp_path / 'mpm.conf'}: ThreadsPerChild: 'abc' is not a whole number"


def test_misspelled_directive_suggests_closest(tmp_path):
    msg = error_of(tmp_path, "Listen 8080\n\nThreadPerChild 4\n")
    assert msg == (f"Syntax error on line 3 of {tmp_path / 'mpm.conf'}: Invalid directive 'ThreadPerChild', "
                   "perhaps misspelled; did you mean 'ThreadsPerChild'?")


def test_unknown_directive_without_suggestion(tmp_path):
    msg = error_of(tmp_path, "Frobnicate 1\n")
    assert msg.endswith("Invalid directive 'Frobnicate', perhaps misspelled")


@pytest.mark.parametrize("line, fragment", [
    ("KeepAlive maybe", "KeepAlive: 'maybe' must be On or Off"),
    ("KeepAlive", "KeepAlive: takes one argument, got 0"),
    ("LogFormat onlyone", "LogFormat: takes two arguments, got 1"),
    ("MaxConnectionsPerChild -1", "MaxConnectionsPerChild: '-1' must not be negative"),
    ("LimitRequestBody -5", "LimitRequestBody: '-5' must not be negative"),
    ("ListenBacklog 0", "ListenBacklog: '0' must be at least 1"),
    ("Timeout soon", "Timeout: 'soon' is not a duration"),
    ("MaxMemoryPerChild 12X", "MaxMemoryPerChild: '12X' is not a size in bytes"),
    ("Listen 999.1.1.1:80", "Listen: '999.1.1.1' is not a valid IPv4 address or host name"),
    ("Listen 127.0.0.1:70000", "Listen: '127.0.0.1:70000': port '70000' is not a number from 0 to 65535"),
    ("Listen ::1:80", "write IPv6 addresses in brackets"),
    ("Listen [::g]:80", "Listen: '::g' is not a valid IPv6 address"),
    ("Listen 8080 https", "Listen: a TLS listener (SSLEngine on or Listen ... https) needs SSLCertificateFile"),
    ("Listen 8080 spdy", "Listen: protocol 'spdy' is not supported (http or https)"),
    ("StatusAllow 10.0.0.300", "StatusAllow: '10.0.0.300' is not an IP address or network"),
    ("StatusPath server-status", "StatusPath: 'server-status' must be a URL path starting with /"),
    ("EventLoop gevent", "EventLoop: 'gevent' must be one of: uvloop, asyncio"),
    ("LogLevel loud", "LogLevel: 'loud' is not a log level"),
    ("WSGIApp my-app:app", "WSGIApp: 'my-app:app': 'my-app' is not a module name; use module:callable"),
    ("WSGIApp myapp:create(open('x'))", "WSGIApp: \"myapp:create(open('x'))\": factory arguments must be literals"),
    ("User root", "User: refusing to run children as root ('root')"),
    ("User #0", "User: refusing to run children as root ('#0')"),
    ("Group #x", "Group: '#x': a numeric group id is written # followed by digits"),
    ("AsyncRequestWorkerFactor 0", "AsyncRequestWorkerFactor: '0' must be a number greater than 0"),
    ("CustomLog /tmp/x.log", "CustomLog: takes two arguments"),
    ("CustomLog - combind", "CustomLog: 'combind' is neither a LogFormat nickname (combined, common)"),
    ("<IfModule foo>", "sections such as <IfModule...> are not supported"),
])
def test_error_forms(tmp_path, line, fragment):
    msg = error_of(tmp_path, "# first\n" + line + "\n")
    assert msg.startswith(f"Syntax error on line 2 of {tmp_path / 'mpm.conf'}: ")
    assert fragment in msg


def test_duplicate_listen_is_an_error_but_port_zero_repeats(tmp_path):
    assert "Cannot define multiple Listeners" in error_of(tmp_path, "Listen 8080\nListen 0.0.0.0:8080\n")
    cfg, _ = parse(tmp_path, "Listen 127.0.0.1:0\nListen 127.0.0.1:0\n")
    assert cfg.listen == [("127.0.0.1", 0), ("127.0.0.1", 0)]


def test_missing_config_file():
    with pytest.raises(ConfigError, match=r"^Could not open configuration file /nonexistent/x.conf: "
                                          r"No such file or directory$"):
        load("/nonexistent/x.conf")


# --- directive values -----------------------------------------------------

def test_listen_forms(tmp_path):
    cfg, _ = parse(tmp_path, "Listen 8080\nListen 127.0.0.1:0\nListen [::1]:9000\nListen *:81\n"
                             "Listen localhost:82 http\n")
    assert cfg.listen == [("0.0.0.0", 8080), ("127.0.0.1", 0), ("::1", 9000), ("0.0.0.0", 81), ("localhost", 82)]


def test_log_formats_and_custom_logs(tmp_path):
    cfg, _ = parse(tmp_path, "CustomLog /tmp/a mine\nLogFormat \"%h %s\" mine\nAccessLog -\n"
                             "CustomLog /tmp/b common\nCustomLog /tmp/c \"%h %>s\"\n")
    assert cfg.custom_logs == [("/tmp/a", "%h %s"), ("-", COMBINED),
                               ("/tmp/b", COMMON), ("/tmp/c", "%h %>s")]


def test_custom_log_off_removes_all(tmp_path):
    cfg, _ = parse(tmp_path, "CustomLog - common\nAccessLog /tmp/x\nCustomLog off\n")
    assert cfg.custom_logs == []
    cfg, _ = parse(tmp_path, "CustomLog - common\nAccessLog off\nAccessLog /tmp/y\n")
    assert cfg.custom_logs == [("/tmp/y", COMBINED)]


def test_repeatable_directives_replace_defaults_then_accumulate(tmp_path):
    cfg, _ = parse(tmp_path, "StatusAllow 10.0.0.0/8\nStatusAllow 192.0.2.1 2001:db8::/32\n")
    assert cfg.status_allow == ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]


def test_user_and_group_kept_as_strings(tmp_path):
    cfg, _ = parse(tmp_path, "User #65534\nGroup nogroup\n")
    assert (cfg.user, cfg.group) == ("#65534", "nogroup")


def test_deprecated_aliases_warn(tmp_path):
    cfg, warnings = parse(tmp_path, "MaxClients 200\n")
    assert cfg.max_request_workers == 200
    conf = tmp_path / "mpm.conf"
    assert warnings == [f"line 1 of {conf}: MaxClients is deprecated, use MaxRequestWorkers instead."]


def test_max_requests_per_child_counts_requests_not_connections(tmp_path):
    # Apache's deprecated alias of MaxConnectionsPerChild; here it is its own
    # limit (gunicorn's max_requests), so a proxy's keep-alive pool recycles.
    cfg, warnings = parse(tmp_path, "MaxRequestsPerChild 1000\nMaxConnectionsPerChild 50\n")
    assert (cfg.max_requests_per_child, cfg.max_connections_per_child) == (1000, 50)
    assert warnings == []


# --- clamping (worker_check_config order and texts) -------------------------

def clamp(**kw) -> tuple[Config, list[str]]:
    cfg = Config(**kw)
    return cfg, C.check_config(cfg)


def test_server_limit_bounds():
    cfg, w = clamp(server_limit=30000, max_request_workers=25, start_servers=1)
    assert cfg.server_limit == 20000
    assert w == ["WARNING: ServerLimit of 30000 exceeds compile-time limit of 20000 servers, decreasing to 20000."]
    cfg, w = clamp(server_limit=0, max_request_workers=25, start_servers=1)
    assert cfg.server_limit == 1
    assert w == ["WARNING: ServerLimit of 0 not allowed, increasing to 1."]


def test_thread_limit_bounds():
    cfg, w = clamp(thread_limit=20001)
    assert cfg.thread_limit == 20000
    assert w == ["WARNING: ThreadLimit of 20001 exceeds compile-time limit of 20000 threads, decreasing to 20000."]
    cfg, w = clamp(thread_limit=-3, threads_per_child=1, max_request_workers=16, min_spare_threads=1,
                   max_spare_threads=3)
    assert cfg.thread_limit == 1
    assert w == ["WARNING: ThreadLimit of -3 not allowed, increasing to 1."]


def test_threads_per_child_bounds():
    cfg, w = clamp(threads_per_child=100)
    assert cfg.threads_per_child == 64
    assert w[0] == ("WARNING: ThreadsPerChild of 100 exceeds ThreadLimit of 64 threads, decreasing to 64. "
                    "To increase, please see the ThreadLimit directive.")
    cfg, w = clamp(threads_per_child=0, max_request_workers=16)
    assert cfg.threads_per_child == 1
    assert w == ["WARNING: ThreadsPerChild of 0 not allowed, increasing to 1."]


def test_max_request_workers_below_threads_per_child():
    cfg, w = clamp(max_request_workers=10, start_servers=1)
    assert cfg.max_request_workers == 25
    assert w == ["WARNING: MaxRequestWorkers of 10 is less than ThreadsPerChild of 25, increasing to 25. "
                 "MaxRequestWorkers must be at least as large as the number of threads in a single server."]


def test_max_request_workers_not_a_multiple():
    cfg, w = clamp(max_request_workers=260)
    assert cfg.max_request_workers == 250 and C.daemons_limit(cfg) == 10
    assert w == ["WARNING: MaxRequestWorkers of 260 is not an integer multiple of ThreadsPerChild of 25, "
                 "decreasing to nearest multiple 250, for a maximum of 10 servers."]


def test_max_request_workers_exceeds_server_limit():
    cfg, w = clamp(max_request_workers=1000)
    assert cfg.max_request_workers == 400 and C.daemons_limit(cfg) == 16
    assert w == ["WARNING: MaxRequestWorkers of 1000 would require 40 servers and would exceed ServerLimit of 16, "
                 "decreasing to 400. To increase, please see the ServerLimit directive."]


def test_start_servers_and_min_spare_below_one():
    cfg, w = clamp(start_servers=0, min_spare_threads=-1)
    assert (cfg.start_servers, cfg.min_spare_threads) == (1, 1)
    assert w == ["WARNING: StartServers of 0 not allowed, increasing to 1.",
                 "WARNING: MinSpareThreads of -1 not allowed, increasing to 1 to avoid almost certain server "
                 "failure. Please read the documentation."]


def test_max_spare_threads_raised_to_min_spare_plus_threads_plus_one():
    cfg, w = clamp(min_spare_threads=4, threads_per_child=8, max_request_workers=64, max_spare_threads=12)
    assert cfg.max_spare_threads == 13
    assert w == ["WARNING: MaxSpareThreads of 12 is less than MinSpareThreads of 4 + ThreadsPerChild of 8 + 1, "
                 "increasing to 13."]
    cfg, w = clamp(min_spare_threads=4, threads_per_child=8, max_request_workers=64, max_spare_threads=13)
    assert cfg.max_spare_threads == 13 and w == []


def test_start_servers_above_daemons_limit():
    cfg, w = clamp(start_servers=20, threads_per_child=10, max_request_workers=50)
    assert cfg.start_servers == 5
    assert w == ["WARNING: StartServers of 20 exceeds MaxRequestWorkers / ThreadsPerChild = 5 servers, "
                 "decreasing to 5."]


def test_clamping_cascades_in_apache_order(tmp_path):
    # ThreadsPerChild is cut to ThreadLimit before MaxRequestWorkers is checked
    # against it, and MaxRequestWorkers against ServerLimit x ThreadsPerChild.
    cfg, w = parse(tmp_path, "ThreadLimit 10\nThreadsPerChild 20\nServerLimit 2\nMaxRequestWorkers 35\n"
                             "MinSpareThreads 5\nMaxSpareThreads 5\n")
    assert (cfg.threads_per_child, cfg.max_request_workers, cfg.max_spare_threads, cfg.start_servers) == (10, 20, 16, 2)
    assert [x.split(" of ")[0] for x in w] == ["WARNING: ThreadsPerChild", "WARNING: MaxRequestWorkers",
                                               "WARNING: MaxRequestWorkers", "WARNING: MaxSpareThreads",
                                               "WARNING: StartServers"]


def test_restart_keeps_server_limit_and_thread_limit():
    old = C.from_kwargs()
    new = C.from_kwargs(server_limit=32, thread_limit=128, threads_per_child=100, max_request_workers=800)
    w = C.reconcile_restart(old, new)
    assert (new.server_limit, new.thread_limit) == (16, 64)
    assert new.threads_per_child == 64 and new.max_request_workers == 64 * 12
    assert w[:2] == ["changing ServerLimit to 32 from original value of 16 not allowed during restart",
                     "changing ThreadLimit to 128 from original value of 64 not allowed during restart"]
    assert "ThreadsPerChild of 100 exceeds ThreadLimit of 64, decreasing to match" in w
    assert C.reconcile_restart(old, C.from_kwargs()) == []


# --- Include --------------------------------------------------------------

def test_include_relative_to_including_file(tmp_path):
    write(tmp_path, "ThreadsPerChild 5\nMaxRequestWorkers 50\n", "sub/pool.conf")
    main = write(tmp_path, "Include sub/pool.conf\nListen 127.0.0.1:0\n", "main.conf")
    cfg, _ = load(str(main))
    assert cfg.threads_per_child == 5 and cfg.listen == [("127.0.0.1", 0)]
    assert cfg.config_file == str(main)


def test_include_glob_sorted_and_later_wins(tmp_path):
    write(tmp_path, "ThreadsPerChild 5\n", "conf.d/10-a.conf")
    write(tmp_path, "ThreadsPerChild 10\n", "conf.d/20-b.conf")
    write(tmp_path, "MaxRequestWorkers 100\n", "conf.d/30-c.conf")
    cfg, _ = load(str(write(tmp_path, "include conf.d/*.conf\n", "main.conf")))
    assert (cfg.threads_per_child, cfg.max_request_workers) == (10, 100)


def test_error_in_included_file_names_that_file(tmp_path):
    inc = write(tmp_path, "\nKeepAlive sometimes\n", "inc.conf")
    with pytest.raises(ConfigError) as ei:
        load(str(write(tmp_path, "Include inc.conf\n", "main.conf")))
    assert str(ei.value) == f"Syntax error on line 2 of {inc}: KeepAlive: 'sometimes' must be On or Off"


def test_include_missing_file_is_an_error(tmp_path):
    msg = error_of(tmp_path, "\nInclude nothere.conf\n")
    assert msg == (f"Syntax error on line 2 of {tmp_path / 'mpm.conf'}: Include: could not open "
                   f"{tmp_path / 'nothere.conf'}: No such file or directory")


def test_include_unmatched_glob_is_an_error_but_include_optional_is_not(tmp_path):
    msg = error_of(tmp_path, "Include none/*.conf\n")
    assert "Include: no file matches the wildcard" in msg and "IncludeOptional" in msg
    cfg, _ = parse(tmp_path, "IncludeOptional none/*.conf\nIncludeOptional missing.conf\n")
    assert cfg.threads_per_child == 25


def test_include_loop_detected(tmp_path):
    write(tmp_path, "Include b.conf\n", "a.conf")
    write(tmp_path, "# b\nInclude a.conf\n", "b.conf")
    with pytest.raises(ConfigError) as ei:
        load(str(tmp_path / "a.conf"))
    msg = str(ei.value)
    assert msg.startswith(f"Syntax error on line 2 of {tmp_path / 'b.conf'}: Include: include loop: ")
    assert msg.endswith(f"{tmp_path / 'a.conf'} -> {tmp_path / 'b.conf'} -> {tmp_path / 'a.conf'}")


def test_self_include_glob_is_a_loop(tmp_path):
    with pytest.raises(ConfigError, match="include loop"):
        load(str(write(tmp_path, "Include *.conf\n", "x.conf")))


# --- overrides and the command line ---------------------------------------

def test_overrides_apply_after_file_and_replace_repeatables(tmp_path):
    conf = write(tmp_path, "Listen 127.0.0.1:8000\nListen 127.0.0.1:8001\nThreadsPerChild 5\n"
                           "MaxRequestWorkers 50\nCustomLog - common\nStatusAllow 10.0.0.1\n")
    cfg, _ = load(str(conf), [("Listen", ["127.0.0.1:0"]), ("Listen", ["[::1]:0"]), ("ThreadsPerChild", ["10"]),
                              ("AccessLog", ["/tmp/a.log"]), ("StatusAllow", ["192.0.2.0/24"])])
    assert cfg.listen == [("127.0.0.1", 0), ("::1", 0)]
    assert cfg.threads_per_child == 10 and cfg.max_request_workers == 50
    assert cfg.custom_logs == [("/tmp/a.log", COMBINED)]
    assert cfg.status_allow == ["192.0.2.0/24"]


def test_override_error_names_the_flag():
    with pytest.raises(ConfigError) as ei:
        load(None, [("ThreadsPerChild", ["abc"])])
    assert str(ei.value) == "command line: --threads-per-child: 'abc' is not a whole number"
    with pytest.raises(ConfigError, match=r"^command line: unknown directive 'ThreadPerChild'; "
                                          r"did you mean 'ThreadsPerChild'\?$"):
        load(None, [("ThreadPerChild", ["4"])])
    with pytest.raises(ConfigError, match=r"^command line: Include can only be used in a configuration file$"):
        load(None, [("Include", ["x.conf"])])
    with pytest.raises(ConfigError, match=r"^command line: --custom-log: takes one argument or two arguments, got 3$"):
        load(None, [("custom-log", ["a", "b", "c"])])


def test_argparse_round_trip(tmp_path):
    p = argparse.ArgumentParser()
    C.add_arguments(p)
    ns = p.parse_args(["--threads-per-child", "4", "--listen", "127.0.0.1:0", "--listen", "[::1]:0",
                       "--keep-alive", "off", "--custom-log", "-", "common", "--access-log", "off",
                       "--status-allow", "10.0.0.0/8", "::1", "--max-memory-per-child", "1G",
                       "--log-format", "%h", "short", "--wsgi-app", "a.b:c"])
    ov = C.overrides_from_args(ns)
    assert ("ThreadsPerChild", ["4"]) in ov and ("Listen", ["[::1]:0"]) in ov
    cfg, _ = load(str(write(tmp_path, "CustomLog /tmp/file combined\n")), ov)
    assert cfg.threads_per_child == 4 and cfg.keep_alive is False
    assert cfg.listen == [("127.0.0.1", 0), ("::1", 0)]
    assert cfg.custom_logs == []  # --access-log off came after --custom-log
    assert cfg.status_allow == ["10.0.0.0/8", "::1"] and cfg.max_memory_per_child == 1 << 30
    assert cfg.log_formats["short"] == "%h" and cfg.wsgi_app == "a.b:c"
    assert C.overrides_from_args(p.parse_args([])) == []


def test_every_flag_defaults_to_none_and_help_shows_default():
    p = argparse.ArgumentParser()
    C.add_arguments(p)
    ns = p.parse_args([])
    flags = [d.flag for d in C.DIRECTIVES.values() if d.flag]
    assert len(flags) >= 38
    assert all(getattr(ns, f.replace("-", "_")) is None for f in flags)
    text = p.format_help()
    assert "--threads-per-child N" in text and "(default: 25)" in text
    assert "--max-clients" not in text  # deprecated aliases have no flags


# --- from_kwargs ------------------------------------------------------------

def test_from_kwargs_validates_and_clamps():
    cfg = C.from_kwargs(threads_per_child=4, listen=[("127.0.0.1", 0)], keep_alive=False, keep_alive_timeout=0.5,
                        max_request_workers=10, custom_logs=[("-", "common")], status_allow=["10.0.0.0/8"])
    assert cfg.listen == [("127.0.0.1", 0)] and cfg.keep_alive is False and cfg.keep_alive_timeout == 0.5
    assert cfg.max_request_workers == 8
    assert cfg.custom_logs == [("-", COMMON)] and cfg.status_allow == ["10.0.0.0/8"]
    assert any("not an integer multiple" in w for w in cfg.warnings)


def test_from_kwargs_errors():
    with pytest.raises(TypeError, match="threads_per_chld"):
        C.from_kwargs(threads_per_chld=4)
    with pytest.raises(ConfigError, match=r"^from_kwargs: listen: "):
        C.from_kwargs(listen=[("127.0.0.1", 99999)])
    with pytest.raises(ConfigError, match=r"^from_kwargs: keep_alive_timeout: '-1.0' must not be negative$"):
        C.from_kwargs(keep_alive_timeout=-1.0)


# --- the sample configuration ----------------------------------------------

def test_sample_config_parses_cleanly():
    cfg, warnings = load(str(SAMPLE))
    assert warnings == []
    assert cfg.listen == [("127.0.0.1", 8000)] and cfg.wsgi_app == "mpmserver.demo:app"
    assert (cfg.start_servers, cfg.threads_per_child, cfg.min_spare_threads, cfg.max_spare_threads,
            cfg.max_request_workers, cfg.server_limit) == (2, 8, 4, 16, 64, 16)
    assert cfg.error_log is None and cfg.custom_logs == [("-", COMBINED)]


def test_sample_config_documents_every_directive():
    text = SAMPLE.read_text()
    missing = [name for name in C.DIRECTIVES if not re.search(rf"\b{name}\b", text)]
    assert missing == []


def test_sample_config_commented_defaults_are_valid(tmp_path):
    # Uncommenting any "#Directive value" line must give a working config
    # (Include lines need files, so they are left out).
    lines = []
    for line in SAMPLE.read_text().splitlines():
        m = re.match(r"#(\w+) ", line)
        if m and m.group(1) in C.DIRECTIVES and not m.group(1).startswith("Include"):
            line = line[1:]
        lines.append(line)
    cfg, warnings = parse(tmp_path, "\n".join(lines) + "\n")
    assert warnings == []
    assert cfg.log_formats == Config().log_formats  # the sample's escaping reproduces the defaults
    assert cfg.user == "nobody" and cfg.status_path == "/server-status"


def test_registry_matches_config_fields():
    import dataclasses

    # listen_explicit records whether a Listen line was given: no directive of its own;
    # listen_protocols are the Listen lines' second words; ssl_context is built from the SSL* ones.
    fields = {f.name for f in dataclasses.fields(Config)} - {"config_file", "warnings", "listen_explicit",
                                                             "listen_protocols", "ssl_context"}
    assert fields == {d.attr for d in C.DIRECTIVES.values() if d.attr}


def test_daemons_limit_is_at_least_one():
    from types import SimpleNamespace

    assert C.daemons_limit(SimpleNamespace(max_request_workers=3, threads_per_child=4)) == 1
    assert C.daemons_limit(SimpleNamespace(max_request_workers=100, threads_per_child=25)) == 4


# -- Alias and the files it serves (issue 27) ----------------------------------------

def test_alias_lines_are_repeatable_and_relative_to_the_file(tmp_path):
    (tmp_path / "static").mkdir()
    (tmp_path / "media").mkdir()
    cfg, _ = parse(tmp_path, "Alias /static/ static\nAlias /media/ \"media\"\nOptions FollowSymLinks\n"
                             "ExpiresActive On\nExpiresDefault \"access plus 1 year\"\nStaticImmutableHashed On\n"
                             "StaticFileCache 16\n")
    assert cfg.aliases == [("/static/", str(tmp_path / "static")), ("/media/", str(tmp_path / "media"))]
    assert cfg.follow_symlinks and cfg.expires_active and cfg.static_immutable_hashed
    assert cfg.expires_default.seconds == 31536000 and cfg.static_file_cache == 16
    defaults = Config()
    assert defaults.aliases == [] and not defaults.follow_symlinks and not defaults.expires_active


def test_an_alias_directory_that_does_not_exist_yet_is_a_warning(tmp_path):
    cfg, warnings = parse(tmp_path, "Alias /static/ nowhere\n")
    assert cfg.aliases == [("/static/", str(tmp_path / "nowhere"))]
    assert any("line 1" in w and "not a directory (yet)" in w for w in warnings), warnings


def test_the_static_flag_reads_like_gunicorns(tmp_path):
    (tmp_path / "s").mkdir()
    parser = argparse.ArgumentParser()
    C.add_arguments(parser)
    ns = parser.parse_args(["--static", f"/static/={tmp_path / 's'}", "--alias", f"/m/={tmp_path / 's'}"])
    cfg, _ = load(None, C.overrides_from_args(ns))
    assert cfg.aliases == [("/static/", str(tmp_path / "s")), ("/m/", str(tmp_path / "s"))]


@pytest.mark.parametrize("line, why", [
    ("Alias static/ .", "starting with /"),
    ("Alias /static/", "URL path and a directory"),
    ("Alias /s/ .\nAlias /s/ .", "already an Alias"),
    ("Options Indexes", "only FollowSymLinks"),
    ("AliasMatch ^/a/(.*)$ /srv/x/$2", "1 group"),
    ("AliasMatch ( /srv/x/$1", "not a regular expression"),
    ("ExpiresDefault \"access plus 1 fortnight\"", "fortnight"),
    ("StaticFileCache 0", "at least 1"),
])
def test_bad_static_directives_name_file_line_and_directive(tmp_path, line, why):
    msg = error_of(tmp_path, line + "\n")
    assert "mpm.conf" in msg and "line" in msg and why in msg
    assert line.split()[0] in msg


def test_aliasmatch_lines_are_kept_in_order_relative_to_the_file(tmp_path):
    cfg, _ = parse(tmp_path, "AliasMatch ^/a/(.*)$ files/$1\nAliasMatch \"^/b/(.*\\.css)$\" /srv/css/$1\n")
    assert cfg.alias_matches == [("^/a/(.*)$", str(tmp_path / "files") + "/$1"), (r"^/b/(.*\.css)$", "/srv/css/$1")]
    assert C.from_kwargs(alias_matches=[("^/c/(.*)$", "/srv/c/$1")]).alias_matches == [("^/c/(.*)$", "/srv/c/$1")]


def test_serve_static_kwargs(tmp_path):
    cfg = C.from_kwargs(aliases={"/static/": tmp_path}, follow_symlinks=True, expires_active=True,
                        expires_default="access plus 2 days")
    assert cfg.aliases == [("/static/", str(tmp_path))] and cfg.follow_symlinks
    assert cfg.expires_default.seconds == 172800
