"""mod_status for mpmserver: the ``?auto`` text, the HTML page, and ``mpmserver status``.

The renderers are pure functions of a ScoreboardSnapshot and a ServerInfo, so
the server's status handler and the command-line reader share them and tests
can feed them hand-built snapshots. Field names, order and counting rules are
Apache 2.4 mod_status's (event MPM flavour, which has the per-process table).
"""

from __future__ import annotations

import argparse
import html
import os
import socket
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Any, Callable

from .. import SERVER_SOFTWARE
from ..scoreboard import (
    SERVER_DEAD,
    SERVER_GRACEFUL,
    SERVER_IDLE_KILL,
    SERVER_READY,
    SERVER_STARTING,
    STATUS_CHARS,
    STATUS_NAMES,
    ProcessSnapshot,
    Scoreboard,
    ScoreboardError,
    ScoreboardSnapshot,
    WorkerSnapshot,
)
from .pages import TEXT, Answer, serve_page

__all__ = ["ServerInfo", "format_uptime", "render_auto", "render_html", "render_summary", "status_app",
           "status_main"]

TIME_FORMAT = "%A, %d-%b-%Y %H:%M:%S %Z"  # Apache's DEFAULT_TIME_FORMAT


@dataclass
class ServerInfo:
    version: str
    hostname: str
    current_time: float
    restart_time: float
    generation: int
    mpm: str = "worker"
    # Known from the configuration: dead slots past these (Apache's
    # SERVER_DISABLED) are left out of the scoreboard line, as httpd 2.4 does.
    # None: print every slot's state.
    max_servers: int | None = None
    threads_per_child: int | None = None
    loadavg: tuple[float, float, float] | None = None


def format_uptime(seconds: int) -> str:
    """Apache's show_time(): "1 day 2 hours 3 minutes 4 seconds", zero parts left out."""
    seconds = max(0, int(seconds))
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return " ".join(parts) or "0 seconds"


def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:  # not available on this system
        return None


def _ht_time(t: float) -> str:
    return time.strftime(TIME_FORMAT, time.localtime(t))


def render_auto(snap: ScoreboardSnapshot, info: ServerInfo) -> str:
    """The machine-readable page (``/server-status?auto``)."""
    uptime = max(0, int(info.current_time - info.restart_time))
    count = snap.total_accesses
    nbytes = snap.total_bytes
    duration_ms = snap.total_duration * 1000.0
    lines = [
        info.hostname,
        f"ServerVersion: {info.version}",
        f"ServerMPM: {info.mpm}",
        f"CurrentTime: {_ht_time(info.current_time)}",
        f"RestartTime: {_ht_time(info.restart_time)}",
        f"ParentServerConfigGeneration: {info.generation}",
        f"ParentServerMPMGeneration: {info.generation}",
        f"ServerUptimeSeconds: {uptime}",
        f"ServerUptime: {format_uptime(uptime)}",
    ]
    if info.loadavg is not None:
        l1, l5, l15 = info.loadavg
        lines += [f"Load1: {l1:.2f}", f"Load5: {l5:.2f}", f"Load15: {l15:.2f}"]
    lines += [
        f"Total Accesses: {count}",
        f"Total kBytes: {nbytes // 1024}",
        f"Total Duration: {int(duration_ms)}",
        f"Uptime: {uptime}",
    ]
    # Like Apache, rates are left out rather than printed as 0 when undefined.
    if uptime > 0:
        lines.append(f"ReqPerSec: {count / uptime:g}")
        lines.append(f"BytesPerSec: {nbytes / uptime:g}")
    if count > 0:
        lines.append(f"BytesPerReq: {nbytes / count:g}")
        lines.append(f"DurationPerReq: {duration_ms / count:g}")
    lines += [
        f"BusyWorkers: {snap.busy_workers}",
        f"GracefulWorkers: {snap.graceful_workers}",
        f"IdleWorkers: {snap.idle_workers}",
        f"Processes: {snap.processes_alive}",
        f"Stopping: {snap.stopping}",
        f"ConnsTotal: {snap.conns_total}",
        f"ConnsAsyncWriting: {snap.conns_writing}",
        f"ConnsAsyncKeepAlive: {snap.conns_keep_alive}",
        f"ConnsAsyncClosing: {snap.conns_closing}",
        f"Scoreboard: {snap.status_line(info.max_servers, info.threads_per_child)}",
        # After Apache's fields, where its modules add theirs (mod_ssl's TLS lines).
        *_auto_memory(snap),
    ]
    if snap.static_requests:
        # Files the listeners answered from an Alias (in Total Accesses too),
        # after Apache's own lines, as a module's status hook adds its own.
        lines += [f"StaticAccesses: {snap.static_requests}", f"StaticKBytes: {snap.static_bytes // 1024}"]
    return "\n".join(lines) + "\n"


def _auto_memory(snap: ScoreboardSnapshot) -> list[str]:
    """mpmserver's fields (Apache has none of them): the live children's
    resident memory in kB, summed, and per child as slot:pid:kB."""
    live = [p for p in snap.processes if p.pid]
    return [f"ResidentKBytes: {snap.resident_bytes // 1024}",
            "ChildResidentKBytes: " + " ".join(f"{p.slot}:{p.pid}:{p.rss // 1024}" for p in live)]


def _bytes_human(n: float) -> str:
    # Apache's format_byte_out()
    if n < 5 * 1024:
        return f"{int(n)} B"
    if n < 5 * 1024 * 1024:
        return f"{n / 1024:.1f} kB"
    if n < 5 * 1024 * 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    return f"{n / (1024 * 1024 * 1024):.1f} GB"


_LEGEND = (
    ("_", "Waiting for Connection"), ("S", "Starting up"), ("R", "Reading Request"),
    ("W", "Sending Reply"), ("K", "Keepalive (read)"), ("D", "DNS Lookup"),
    ("C", "Closing connection"), ("L", "Logging"), ("G", "Gracefully finishing"),
    ("I", "Idle cleanup of worker"), (".", "Open slot with no current process"),
)
_SCOREBOARD_LINE = 64  # Apache's STATUS_MAXLINE


def _stopping_text(p: ProcessSnapshot, generation: int) -> str:
    if p.generation != generation:
        return "yes (old gen)"
    return "yes" if p.quiescing else "no"


def _thread_counts(p: ProcessSnapshot) -> tuple[int, int, int]:
    """(busy, graceful, idle) threads of one process, counted as mod_status's table counts them."""
    busy = graceful = idle = 0
    for w in p.workers:
        st = w.status
        if st == SERVER_READY:
            idle += 1
        elif st not in (SERVER_DEAD, SERVER_STARTING, SERVER_IDLE_KILL):
            busy += 1
            graceful += st == SERVER_GRACEFUL
    return busy, graceful, idle


def _process_rows(snap: ScoreboardSnapshot) -> list[str]:
    rows = []
    for p in snap.processes:
        if not p.pid:
            continue
        busy, graceful, idle = _thread_counts(p)
        rows.append(
            f"<tr><td>{p.slot}</td><td>{p.pid}</td><td>{_stopping_text(p, snap.generation)}</td>"
            f"<td>{p.connections}</td><td>{'no' if p.not_accepting else 'yes'}</td>"
            f"<td>{busy}</td><td>{graceful}</td><td>{idle}</td>"
            f"<td>{p.writing}</td><td>{p.keep_alive}</td><td>{p.lingering_close}</td>"
            f"<td>{p.static_requests}</td><td>{_bytes_human(p.rss) if p.rss else '-'}</td></tr>")
    return rows


def _worker_row(slot: int, w: WorkerSnapshot, now: float) -> str:
    esc = html.escape
    req_ms = 0 if not w.start_time else max(0, int((w.stop_time - w.start_time) * 1000))
    ss = int(now - w.last_used) if w.last_used else "-"
    pid = "-" if w.status == SERVER_DEAD or not w.pid else str(w.pid)
    st = w.status
    mode = STATUS_CHARS[st] if 0 <= st < len(STATUS_CHARS) else "?"
    name = STATUS_NAMES[st] if 0 <= st < len(STATUS_NAMES) else "unknown"
    return (
        f"<tr><td><b>{slot}-{w.generation}</b></td><td>{pid}</td>"
        f"<td>{w.conn_count}/{w.my_access_count}/{w.access_count}</td>"
        f"<td title=\"{esc(name)}\"><b>{esc(mode)}</b></td><td>{ss}</td><td>{req_ms}</td>"
        f"<td>{int(w.total_duration * 1000)}</td>"
        f"<td>{w.conn_bytes / 1024:.1f}</td><td>{w.my_bytes_served / 1048576:.2f}</td>"
        f"<td>{w.bytes_served / 1048576:.2f}</td>"
        f"<td>{esc(w.client)}</td><td nowrap>{esc(w.request)}</td></tr>")


def render_html(snap: ScoreboardSnapshot, info: ServerInfo) -> str:
    """The human page (``/server-status``), shaped like mod_status with ExtendedStatus On."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{esc(info.version)} Status</title></head><body>",
        f"<h1>Server Status for {esc(info.hostname)}</h1>",
        f"<dl><dt>Server Version: {esc(info.version)}</dt>",
        f"<dt>Server MPM: {esc(info.mpm)}</dt></dl><hr /><dl>",
    ]
    out += _html_summary(snap, info)
    out += _html_processes(snap)
    grid = "\n".join(_grid(snap.status_line(info.max_servers, info.threads_per_child)))
    out.append(f"<pre class=\"scoreboard\">{esc(grid)}</pre>")
    out.append("<p>Scoreboard Key:<br />\n" + ",\n".join(
        f"\"<b><code>{esc(c)}</code></b>\" {esc(text)}" for c, text in _LEGEND) + "</p>")
    out += _html_workers(snap, info.current_time)
    out.append("</body></html>\n")
    return "\n".join(out)


def _html_summary(snap: ScoreboardSnapshot, info: ServerInfo) -> list[str]:
    """The times, totals and rates above the tables."""
    esc = html.escape
    uptime = max(0, int(info.current_time - info.restart_time))
    count, nbytes = snap.total_accesses, snap.total_bytes
    out = [
        f"<dt>Current Time: {esc(_ht_time(info.current_time))}</dt>",
        f"<dt>Restart Time: {esc(_ht_time(info.restart_time))}</dt>",
        f"<dt>Parent Server Config. Generation: {info.generation}</dt>",
        f"<dt>Parent Server MPM Generation: {info.generation}</dt>",
        f"<dt>Server uptime: {format_uptime(uptime)}</dt>",
    ]
    if info.loadavg is not None:
        out.append("<dt>Server load: {:.2f} {:.2f} {:.2f}</dt>".format(*info.loadavg))
    out.append(f"<dt>Total accesses: {count} - Total Traffic: {_bytes_human(nbytes)} - "
               f"Total Duration: {int(snap.total_duration * 1000)}</dt>")
    if uptime > 0 or count > 0:
        rates = []
        if uptime > 0:
            rates += [f"{count / uptime:.3g} requests/sec", f"{_bytes_human(nbytes / uptime)}/second"]
        if count > 0:
            rates += [f"{_bytes_human(nbytes / count)}/request",
                      f"{snap.total_duration * 1000 / count:.3g} ms/request"]
        out.append(f"<dt>{' - '.join(rates)}</dt>")
    out.append(f"<dt>{snap.busy_workers} requests currently being processed, "
               f"{snap.graceful_workers} workers gracefully restarting, "
               f"{snap.idle_workers} idle workers</dt></dl>")
    tls = _html_tls(snap)
    if tls:
        out.append(tls)
    return out


def _html_tls(snap: ScoreboardSnapshot) -> str:
    """TLS connections, handshakes in progress and failed ones by reason
    (only once a TLS listener has had a client: a plain server's page is Apache's)."""
    failures = {r: n for r, n in snap.tls_failures().items() if n}
    if not (snap.tls_connections or snap.tls_handshakes or failures):
        return ""
    failed = ", ".join(f"{r} {n}" for r, n in failures.items()) or "none"
    return (f"<dl><dt>TLS: {snap.tls_connections} connections, {snap.tls_handshakes} handshakes in progress; "
            f"failed handshakes: {failed}</dt></dl>")


def _html_processes(snap: ScoreboardSnapshot) -> list[str]:
    """The table of processes (mod_status's event MPM table), with its sum."""
    return [
        "<table rules=\"all\" cellpadding=\"1%\">\n"
        "<tr><th rowspan=\"2\">Slot</th><th rowspan=\"2\">PID</th><th rowspan=\"2\">Stopping</th>"
        "<th colspan=\"2\">Connections</th><th colspan=\"3\">Threads</th>"
        "<th colspan=\"3\">Async connections</th><th rowspan=\"2\">Static</th>"
        "<th rowspan=\"2\">Resident memory</th></tr>\n"
        "<tr><th>total</th><th>accepting</th><th>busy</th><th>graceful</th><th>idle</th>"
        "<th>writing</th><th>keep-alive</th><th>closing</th></tr>",
        *_process_rows(snap),
        f"<tr><td>Sum</td><td>{snap.processes_alive}</td><td>{snap.stopping}</td>"
        f"<td>{snap.conns_total}</td><td>&nbsp;</td><td>{snap.busy_workers}</td>"
        f"<td>{snap.graceful_workers}</td><td>{snap.idle_workers}</td><td>{snap.conns_writing}</td>"
        f"<td>{snap.conns_keep_alive}</td><td>{snap.conns_closing}</td><td>{snap.static_requests}</td>"
        f"<td>{_bytes_human(snap.resident_bytes)}</td></tr>\n</table>",
    ]


def _html_workers(snap: ScoreboardSnapshot, now: float) -> list[str]:
    """ExtendedStatus: a row per worker that has served or is serving, and the key."""
    out = ["<table border=\"0\"><tr><th>Srv</th><th>PID</th><th>Acc</th><th>M</th>"
           "<th>SS</th><th>Req</th><th>Dur</th><th>Conn</th><th>Child</th><th>Slot</th>"
           "<th>Client</th><th>Request</th></tr>"]
    for p in snap.processes:
        for w in p.workers:
            # Apache lists a worker once it has served something or is doing something.
            if w.access_count or w.status not in (SERVER_READY, SERVER_DEAD):
                out.append(_worker_row(p.slot, w, now))
    out.append("</table>")
    out.append(
        "<hr /><table><tr><th>Srv</th><td>Child Server number - generation</td></tr>\n"
        "<tr><th>PID</th><td>OS process ID</td></tr>\n"
        "<tr><th>Acc</th><td>Number of accesses this connection / this child / this slot</td></tr>\n"
        "<tr><th>M</th><td>Mode of operation</td></tr>\n"
        "<tr><th>SS</th><td>Seconds since beginning of most recent request</td></tr>\n"
        "<tr><th>Req</th><td>Milliseconds required to process most recent request</td></tr>\n"
        "<tr><th>Dur</th><td>Sum of milliseconds required to process all requests</td></tr>\n"
        "<tr><th>Conn</th><td>Kilobytes transferred this connection</td></tr>\n"
        "<tr><th>Child</th><td>Megabytes transferred this child</td></tr>\n"
        "<tr><th>Slot</th><td>Total megabytes transferred this slot</td></tr>\n</table>")
    return out


# --- the human summary of `mpmserver status` -------------------------------

def render_summary(snap: ScoreboardSnapshot, info: ServerInfo, recent_rate: float | None = None) -> str:
    """What `mpmserver status` prints: a summary, one line per child, and the
    scoreboard grid with its key, as `apachectl status` shows mod_status.
    ``recent_rate``: requests per second since the previous look (--watch)."""
    uptime = max(0, int(info.current_time - info.restart_time))
    count = snap.total_accesses
    rate = f"{count / uptime:.3g}/s since the start" if uptime else "no rate yet"
    if recent_rate is not None:
        rate += f", {recent_rate:.3g}/s now"
    live = [p for p in snap.processes if p.pid]
    lines = [
        f"{info.version} ({info.mpm} MPM) on {info.hostname}, up {format_uptime(uptime)}, "
        f"generation {info.generation}",
        f"Children: {snap.processes_alive} ({snap.stopping} stopping)   Workers: {snap.busy_workers} busy, "
        f"{snap.idle_workers} idle, {snap.graceful_workers} finishing gracefully",
        f"Connections: {snap.conns_total} open ({snap.conns_keep_alive} keep-alive, {snap.conns_writing} "
        f"writing, {snap.conns_closing} closing)",
        f"Requests: {count} served, {rate}; {_bytes_human(snap.total_bytes)} sent",
        f"Resident memory: {_bytes_human(snap.resident_bytes)} in {len(live)} "
        f"child{'' if len(live) == 1 else 'ren'}",
        "",
        *_summary_table(snap, live),
        "",
        "Scoreboard:",
        *_grid(snap.status_line(info.max_servers, info.threads_per_child)),
        "",
        *textwrap.wrap("Key: " + ", ".join(f'"{c}" {text}' for c, text in _LEGEND), 78),
    ]
    return "\n".join(lines) + "\n"


def _summary_table(snap: ScoreboardSnapshot, live: list[ProcessSnapshot]) -> list[str]:
    from .metrics import child_state  # one definition of a child's state, the metrics'

    rows = [("Slot", "PID", "Gen", "State", "Busy", "Idle", "Conns", "Requests", "RSS")]
    for p in live:
        busy, _, idle = _thread_counts(p)
        rows.append((str(p.slot), str(p.pid), str(p.generation), child_state(p, snap.generation), str(busy),
                     str(idle), str(p.connections), str(p.requests), _bytes_human(p.rss) if p.rss else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    # Text columns to the left, numbers to the right.
    return ["  ".join(cell.ljust(w) if i == 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
            .rstrip() for r in rows]


def _grid(line: str) -> list[str]:
    """The scoreboard line cut as mod_status cuts it (64 a line)."""
    return [line[i:i + _SCOREBOARD_LINE] for i in range(0, len(line), _SCOREBOARD_LINE)] or [""]


# --- the status page served by the children (StatusPath) -------------------

def status_app(app: Callable, child: Any) -> Callable:
    """Wrap `app` so that GET/HEAD of exactly ``config.status_path`` is the status page.

    `child` provides ``config`` (status_path, status_allow, max_request_workers,
    threads_per_child) and ``scoreboard``. Clients outside StatusAllow get 403
    (pages.serve_page). Query: ``auto`` for the machine-readable text,
    ``refresh=N`` for a Refresh header.
    """
    from ..config import daemons_limit

    cfg = child.config
    scoreboard = child.scoreboard
    tpc = cfg.threads_per_child
    max_servers = daemons_limit(cfg)
    hostname = socket.gethostname()

    def answer(environ: dict) -> Answer:
        args = environ.get("QUERY_STRING", "").split("&")
        refresh = tuple(("Refresh", str(max(1, int(a[8:])))) for a in args
                        if a.startswith("refresh=") and a[8:].isdigit())
        snap = scoreboard.snapshot()
        info = ServerInfo(version=SERVER_SOFTWARE, hostname=environ.get("SERVER_NAME") or hostname,
                          current_time=time.time(), restart_time=snap.restart_time,
                          generation=snap.generation, max_servers=max_servers,
                          threads_per_child=tpc, loadavg=_loadavg())
        if "auto" in args:
            return Answer("200 OK", render_auto(snap, info).encode(), TEXT, refresh)
        return Answer("200 OK", render_html(snap, info).encode(), "text/html; charset=utf-8", refresh)

    return serve_page(app, cfg.status_path, answer, what="The status page", allow=cfg.status_allow,
                      directive="StatusAllow")


# --- `mpmserver status` ------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mpmserver status",
        description="Show a running server's status from its ScoreBoardFile: a summary with one line "
                    "per child and the scoreboard grid (as apachectl status shows mod_status), or "
                    "server-status?auto's text with --auto, or its HTML page with --html.")
    p.add_argument("-f", "--config", metavar="FILE",
                   help="configuration file of the running server (its ScoreBoardFile is read)")
    p.add_argument("--scoreboard-file", metavar="PATH", help="read this scoreboard file directly")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--auto", action="store_true",
                      help="print the machine-readable text of server-status?auto instead of the summary")
    form.add_argument("--html", action="store_true", help="print the HTML page instead of the summary")
    p.add_argument("--watch", action="store_true", help="refresh every --interval seconds until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="refresh interval for --watch (default: 1)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="with --watch, stop after N refreshes (default: until Ctrl-C)")
    return p


def _resolve(args: argparse.Namespace) -> tuple[str, int | None, int | None]:
    """(scoreboard path, daemons limit, ThreadsPerChild) or raise ValueError with the fix."""
    max_servers = threads_per_child = None
    path = args.scoreboard_file
    if args.config:
        from .. import (
            config as config_mod,  # loaded only when needed: keeps --scoreboard-file light
        )

        try:
            cfg, _warnings = config_mod.load(args.config)
        except config_mod.ConfigError as e:
            raise ValueError(str(e)) from None
        except OSError as e:
            raise ValueError(f"cannot read configuration {args.config}: {e.strerror}") from None
        threads_per_child = cfg.threads_per_child
        max_servers = config_mod.daemons_limit(cfg)
        if path is None:
            path = cfg.scoreboard_file
            if not path:
                raise ValueError(
                    f"{args.config} sets no ScoreBoardFile; the scoreboard lives in anonymous memory "
                    "that only the server can read. Add 'ScoreBoardFile /run/mpmserver.scoreboard', "
                    "restart the server, and try again")
            if not os.path.isabs(path) and cfg.config_file:
                # a relative ScoreBoardFile is taken relative to the configuration file
                path = os.path.join(os.path.dirname(cfg.config_file), path)
    if not path:
        raise ValueError("say where the scoreboard is: -f CONFIG (with ScoreBoardFile set) "
                         "or --scoreboard-file PATH")
    return path, max_servers, threads_per_child


class _Reader:
    """Reads the scoreboard file and renders it in the chosen form; remembers
    the previous look, so that --watch shows the request rate of the moment."""

    def __init__(self, path: str, form: str, max_servers: int | None, tpc: int | None) -> None:
        self.path, self.form, self.max_servers, self.tpc = path, form, max_servers, tpc
        self._last: tuple[float, int, float] | None = None  # (time, requests, restart time)

    def render(self) -> str:
        # Attach afresh each time: a restarted server replaces the file.
        sb = Scoreboard.attach(self.path)
        try:
            snap = sb.snapshot()
        finally:
            sb.close()
        now = time.time()
        info = ServerInfo(version=SERVER_SOFTWARE, hostname=socket.gethostname(), current_time=now,
                          restart_time=snap.restart_time, generation=snap.generation,
                          max_servers=self.max_servers, threads_per_child=self.tpc, loadavg=_loadavg())
        if self.form == "html":
            return render_html(snap, info)
        if self.form == "auto":
            return render_auto(snap, info)
        recent = None
        count = snap.total_accesses
        if self._last is not None and self._last[2] == snap.restart_time and now > self._last[0]:
            recent = max(0, count - self._last[1]) / (now - self._last[0])  # a HUP zeroes the counts
        self._last = (now, count, snap.restart_time)
        return render_summary(snap, info, recent)


def status_main(argv: list[str]) -> int:
    """``mpmserver status``: print the server's status; 0 on success, 1 with a message on error."""
    args = _parser().parse_args(argv)
    try:
        path, max_servers, tpc = _resolve(args)
        reader = _Reader(path, "html" if args.html else "auto" if args.auto else "summary", max_servers, tpc)
        if not args.watch:
            sys.stdout.write(reader.render())
            return 0
        clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
        n = 0
        while True:
            text = reader.render()
            sys.stdout.write(clear + text)
            sys.stdout.flush()
            n += 1
            if args.count and n >= args.count:
                return 0
            time.sleep(args.interval)
    except (ValueError, ScoreboardError) as e:
        print(f"mpmserver status: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # `mpmserver status --watch | head`: the reader is gone, which ends
        # the watch. Point stdout at /dev/null so the exit's flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


if __name__ == "__main__":
    sys.exit(status_main(sys.argv[1:]))
