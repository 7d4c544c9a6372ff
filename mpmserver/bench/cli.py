"""`mpmserver bench`: command line parsing and the two modes (URL and --app)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile

from .load import LoadConfig, build_request
from .pss import tree_memory
from .report import format_text
from .runner import PROGRESS_AFTER, BenchError, parse_url, run_load
from .server import ScoreboardSampler, ServerProcess, free_port, mpmserver_command

USAGE = """\
mpmserver bench URL [options]
mpmserver bench --app module:app [PATH] [options] [--server-directive VALUE ...]"""

EPILOG = """\
With --app, options the load generator does not know are passed to mpmserver
as directives (e.g. --threads-per-child 8 --start-servers 2), and the report
adds what the scoreboard saw: peak busy workers, children started and
recycled, idle workers over time; and the server's memory after the load:
the PSS of every process of it, summed (mpmserver/bench/pss.py).

Latencies: closed loop (default) measures from each request's send; with
--rate they are measured from when each request was meant to be sent, so a
server stall shows in every request it delayed (as wrk2 does)."""

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds from '10', '10s', '500ms', '2m' or '1h'."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: use e.g. 10, 10s, 500ms, 2m")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {v}")
    return v


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"bad header {text!r}: use -H 'Name: value'")
    return name.strip(), value.strip()


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser that keeps the action of each option flag, in its
    groups too (``flags``), from what add_argument returns: argparse has no
    public table of them. split_directives reads it."""

    def __init__(self, *args, **kwargs) -> None:
        self.flags: dict[str, argparse.Action] = {}  # before the base adds -h
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        return self._keep(super().add_argument(*args, **kwargs))

    def add_argument_group(self, *args, **kwargs):
        return self._keeping(super().add_argument_group(*args, **kwargs))

    def add_mutually_exclusive_group(self, *args, **kwargs):
        return self._keeping(super().add_mutually_exclusive_group(*args, **kwargs))

    def _keep(self, action: argparse.Action) -> argparse.Action:
        self.flags.update(dict.fromkeys(action.option_strings, action))
        return action

    def _keeping(self, group):
        add = group.add_argument
        group.add_argument = lambda *args, **kwargs: self._keep(add(*args, **kwargs))
        return group


def build_parser() -> FlagParser:
    p = FlagParser(prog="mpmserver bench", usage=USAGE, epilog=EPILOG,
                   formatter_class=argparse.RawDescriptionHelpFormatter,
                   description="HTTP/1.1 load generator (uvloop).")
    p.add_argument("url", nargs="?", help="http://host:port/path (with --app: just a path)")
    p.add_argument("--app", metavar="MODULE:APP",
                   help="start mpmserver with this WSGI app, load it, stop it")
    p.add_argument("-c", "--connections", type=_positive_int, default=32)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-d", "--duration", type=parse_duration, default=None,
                   help="measured time (default 10s)")
    g.add_argument("-n", "--requests", type=_positive_int, default=None,
                   help="measured request count instead of a duration")
    p.add_argument("--warmup", type=parse_duration, default=None,
                   help="unmeasured load before measuring (default 1s with -d, 0 with -n)")
    p.add_argument("--pipeline", type=_positive_int, default=1, metavar="N",
                   help="requests in flight per connection")
    p.add_argument("-m", "--method", default=None, help="default GET, or POST with a body")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--body", default=None, help="request body text")
    b.add_argument("--body-file", default=None, metavar="FILE", help="request body from a file")
    p.add_argument("-H", "--header", type=_header, action="append", default=[],
                   metavar="'NAME: VALUE'")
    p.add_argument("--no-keepalive", action="store_true",
                   help="one request per connection (Connection: close)")
    p.add_argument("--procs", type=_positive_int, default=1,
                   help="generator processes (to use more cores)")
    p.add_argument("--rate", type=float, default=None, metavar="R",
                   help="open loop: R requests/s in total, latency from intended send time")
    p.add_argument("--timeout", type=parse_duration, default=5.0,
                   help="a request without a response after this is an error (default 5s)")
    p.add_argument("--unix-socket", default=None, metavar="PATH",
                   help="connect to this unix socket (Listen unix:PATH); the URL still gives the path and Host")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--server-timeout", type=parse_duration, default=30.0,
                   help="with --app: how long to wait for the server to serve")
    return p


def config_from_args(args: argparse.Namespace, url: str) -> tuple[LoadConfig, dict]:
    host, port, target, host_header = parse_url(url)
    if args.body_file is not None:
        try:
            with open(args.body_file, "rb") as f:
                body = f.read()
        except OSError as exc:
            raise BenchError(f"cannot read --body-file: {exc}") from None
    else:
        body = (args.body or "").encode("utf-8")
    method = (args.method or ("POST" if body else "GET")).upper()
    if args.rate is not None and args.rate <= 0:
        raise BenchError(f"--rate must be positive, not {args.rate:g}")
    pipeline = args.pipeline
    if args.no_keepalive and pipeline > 1:
        raise BenchError("--pipeline needs keep-alive: drop --no-keepalive or --pipeline")
    duration = None if args.requests is not None else (args.duration or 10.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if duration else 0.0)
    cfg = LoadConfig(
        host=host, port=port,
        request=build_request(method, target, host_header, args.header, body, not args.no_keepalive),
        connections=args.connections, duration=duration, requests=args.requests,
        warmup=warmup, pipeline=pipeline, rate=args.rate, timeout=args.timeout,
        keepalive=not args.no_keepalive, head=method == "HEAD", unix_socket=args.unix_socket)
    meta = {"url": url if args.unix_socket is None else f"{url} via unix:{args.unix_socket}",
            "method": method, "connections": args.connections,
            "pipeline": pipeline, "keepalive": not args.no_keepalive, "rate": args.rate,
            "warmup_s": warmup, "requested_duration_s": duration,
            "requested_requests": args.requests}
    return cfg, meta


def _show_progress(args, cfg: LoadConfig) -> bool:
    if args.no_progress or args.json or not sys.stderr.isatty():
        return False
    return cfg.requests is not None or (cfg.duration or 0) + cfg.warmup > PROGRESS_AFTER


def _start_hint(message: str, directives: list[str]) -> str:
    if (os.geteuid() == 0 and "failed to load the WSGI app" in message
            and "--preload-app" not in directives and "--user" not in directives):
        return ("\nhint: started as root, mpmserver runs its children as nobody, who may not be "
                "able to read your Python installation or app; add --user ACCOUNT, or "
                "--preload-app on to import the app in the master")
    return ""


def split_directives(argv: list[str], parser: FlagParser) -> tuple[list[str], list[str]]:
    """(the generator's arguments, mpmserver directive flags with their values).

    A directive flag takes its value with it, so `--threads-per-child 8` is
    never read as the URL path; the generator's own options (--timeout) win.
    """
    from .. import config as configmod

    dp = FlagParser(add_help=False)
    configmod.add_arguments(dp)
    ours = parser.flags
    mine: list[str] = []
    theirs: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        flag = word.split("=", 1)[0]
        action = dp.flags.get(flag)
        if action is None or flag in ours or not word.startswith("-"):
            mine.append(word)
            i += 1
            continue
        theirs.append(word)
        i += 1
        if "=" in word:
            continue
        count = action.nargs if isinstance(action.nargs, int) else 1
        if action.nargs == "+":
            while i < len(argv) and not argv[i].startswith("-"):
                theirs.append(argv[i])
                i += 1
            continue
        theirs.extend(argv[i:i + (count or 1)])
        i += count or 1
    return mine, theirs


def run(argv: list[str]) -> dict:
    """Parse argv, run the benchmark, return the report (raises BenchError)."""
    parser = build_parser()
    argv, directives = split_directives(argv, parser)
    args, extra = parser.parse_known_args(argv)
    extra = directives + extra
    if not args.app:
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)} "
                         f"(server directives only go with --app)")
        if not args.url:
            parser.error("give a URL, or --app module:app")
        cfg, meta = config_from_args(args, args.url)
        return run_load(cfg, args.procs, _show_progress(args, cfg), meta)
    if args.unix_socket is not None:
        parser.error("--unix-socket measures a server you started (Listen unix:PATH); not with --app")
    path = args.url or "/"
    if "://" in path:
        parser.error("with --app give a path (e.g. /hello), not a URL: the server's address is chosen for you")
    if not path.startswith("/"):
        path = "/" + path
    host, port = "127.0.0.1", free_port()
    with tempfile.TemporaryDirectory(prefix="mpmserver-bench-") as tmp:
        board = os.path.join(tmp, "scoreboard")
        cmd = mpmserver_command(args.app, host, port, extra, scoreboard_file=board)
        server = ServerProcess(cmd, host, port, name="mpmserver", ready_path=path)
        try:
            server.start(args.server_timeout)
        except BenchError as exc:
            raise BenchError(f"{exc}{_start_hint(str(exc), extra)}") from None
        with server:
            cfg, meta = config_from_args(args, f"http://{host}:{port}{path}")
            meta["app"] = args.app
            meta["directives"] = extra
            sampler = ScoreboardSampler(board).start()
            try:
                rep = run_load(cfg, args.procs, _show_progress(args, cfg), meta)
            finally:
                rep_server = sampler.stop()
            rep["server"] = rep_server
            # What the server costs the machine: every process's PSS, summed.
            rep["memory"] = tree_memory(server.proc.pid).as_dict()
    return rep


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mpmserver bench`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rep = run(argv)
    except BenchError as exc:
        print(f"mpmserver bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mpmserver bench: interrupted", file=sys.stderr)
        return 130
    if argv and ("--json" in argv):
        print(json.dumps(rep, indent=None, sort_keys=True))
    else:
        print(format_text(rep))
    if rep["responses"] == 0:
        first = next(iter(rep["error_examples"].values()), "no response and no error")
        print(f"mpmserver bench: no response from {rep['url']}: {first}", file=sys.stderr)
        return 1
    return 0
