import os
import subprocess
import sys

import pytest

from mpmserver.modules.status import (
    ServerInfo,
    format_uptime,
    render_auto,
    render_html,
    render_summary,
    status_main,
)
from mpmserver.scoreboard import (
    SERVER_BUSY_WRITE,
    ProcessSnapshot,
    Scoreboard,
    ScoreboardSnapshot,
)
from tests.support.snapshots import NOW, W, hand_built


def info(**kw) -> ServerInfo:
    base = dict(version="mpmserver/0.1.0", hostname="www.example.org", current_time=NOW,
                restart_time=NOW - 100, generation=1)
    base.update(kw)
    return ServerInfo(**base)


def parse_auto(text: str) -> tuple[str, dict[str, str], list[str]]:
    lines = text.splitlines()
    fields = {}
    order = []
    for line in lines[1:]:
        key, sep, value = line.partition(": ")
        assert sep, f"line without 'Key: value': {line!r}"
        fields[key] = value
        order.append(key)
    return lines[0], fields, order


def test_auto_fields_match_the_snapshot():
    host, f, order = parse_auto(render_auto(hand_built(), info()))
    assert host == "www.example.org"
    assert f["ServerVersion"] == "mpmserver/0.1.0"
    assert f["ServerMPM"] == "worker"
    assert f["ServerUptimeSeconds"] == "100" and f["Uptime"] == "100"
    assert f["ServerUptime"] == "1 minute 40 seconds"
    assert f["Total Accesses"] == "40"  # every slot's counters, free slots included
    assert f["Total kBytes"] == str((10240 + 2048 + 1024 + 1024 * 1024) // 1024)
    assert f["Total Duration"] == "2000"  # milliseconds
    assert float(f["ReqPerSec"]) == pytest.approx(0.4)
    assert float(f["BytesPerReq"]) == pytest.approx((10240 + 2048 + 1024 + 1024 * 1024) / 40)
    assert float(f["DurationPerReq"]) == pytest.approx(50.0)
    # busy: W and K in slot 0; the quiescing slot 1 is not counted (mod_status)
    assert f["BusyWorkers"] == "2"
    assert f["GracefulWorkers"] == "0"
    assert f["IdleWorkers"] == "2"
    assert f["Processes"] == "2"
    assert f["Stopping"] == "1"
    assert f["ConnsTotal"] == "6"
    assert f["ConnsAsyncKeepAlive"] == "2"
    assert f["ConnsAsyncClosing"] == "1"
    assert f["Scoreboard"] == "_WK_G......."
    # the live children's resident memory: summed, and slot:pid:kB each
    assert f["ResidentKBytes"] == str(100 * 1024)
    assert f["ChildResidentKBytes"] == f"0:100:{48 * 1024} 1:101:{52 * 1024}"


def test_auto_field_order_is_apaches():
    _, _, order = parse_auto(render_auto(hand_built(), info(loadavg=(0.5, 0.25, 0.125))))
    expected = ["ServerVersion", "ServerMPM", "CurrentTime", "RestartTime",
                "ParentServerConfigGeneration", "ParentServerMPMGeneration", "ServerUptimeSeconds",
                "ServerUptime", "Load1", "Load5", "Load15", "Total Accesses", "Total kBytes",
                "Total Duration", "Uptime", "ReqPerSec", "BytesPerSec", "BytesPerReq",
                "DurationPerReq", "BusyWorkers", "GracefulWorkers", "IdleWorkers", "Processes",
                "Stopping", "ConnsTotal", "ConnsAsyncWriting", "ConnsAsyncKeepAlive",
                "ConnsAsyncClosing", "Scoreboard"]
    # mpmserver's own fields come after Apache's, where Apache's modules add theirs.
    assert order == expected + ["ResidentKBytes", "ChildResidentKBytes"]


def test_rates_are_left_out_when_undefined():
    empty = Scoreboard.create(1, 2)
    try:
        _, f, _ = parse_auto(render_auto(empty.snapshot(), info(restart_time=NOW)))
    finally:
        empty.close()
    assert f["Total Accesses"] == "0"
    for key in ("ReqPerSec", "BytesPerSec", "BytesPerReq", "DurationPerReq"):
        assert key not in f
    assert f["ServerUptime"] == "0 seconds"


def test_scoreboard_line_has_one_char_per_slot_and_leaves_out_disabled_ones():
    _, f, _ = parse_auto(render_auto(hand_built(), info()))
    assert len(f["Scoreboard"]) == 3 * 4
    # ThreadsPerChild 2, 2 servers: open slots are ".", and dead slots past those
    # limits are left out, as Apache 2.4 writes them (no trailing blanks).
    _, f, _ = parse_auto(render_auto(hand_built(), info(max_servers=2, threads_per_child=2)))
    # (a busy slot past them, an old child's K and _, still shows).
    assert f["Scoreboard"] == "_WK_G."
    _, f, _ = parse_auto(render_auto(hand_built(), info(max_servers=3, threads_per_child=3)))
    assert f["Scoreboard"] == "_WK_" + "G.." + "..."


def test_format_uptime():
    assert format_uptime(90061) == "1 day 1 hour 1 minute 1 second"
    assert format_uptime(2 * 86400 + 7200) == "2 days 2 hours"


def test_html_has_summary_grid_and_tables():
    page = render_html(hand_built(), info())
    assert "<h1>Server Status for www.example.org</h1>" in page
    assert "2 requests currently being processed" in page and "2 idle workers" in page
    assert '<pre class="scoreboard">_WK_G.......</pre>' in page
    assert "Open slot with no current process" in page
    # per-process table: slot 1 is an old generation child that is stopping
    assert "<tr><td>0</td><td>100</td><td>no</td><td>5</td><td>yes</td><td>2</td><td>0</td><td>2</td>" in page
    assert "<tr><td>1</td><td>101</td><td>yes (old gen)</td><td>1</td><td>no</td><td>1</td><td>1</td><td>0</td>" in page
    # per-worker table: the busy worker with its request and timings
    assert "<th>Srv</th><th>PID</th><th>Acc</th><th>M</th><th>SS</th><th>Req</th>" in page
    row = next(line for line in page.splitlines() if "GET /busy" in line)
    assert "<td><b>0-1</b></td><td>100</td><td>0/5/5</td>" in row
    assert "<td>2</td><td>0</td><td>500</td>" in row  # SS 2 s, Req clamped to 0, Dur 500 ms
    assert "192.0.2.1:4000" in row
    # a free slot that served requests is listed with "-" as its PID
    assert "<td><b>2-0</b></td><td>-</td><td>0/20/20</td>" in page
    # each live child's resident memory, and their sum
    assert "<td>48.0 MB</td></tr>" in page and "<td>52.0 MB</td></tr>" in page
    assert "<td>100.0 MB</td></tr>\n</table>" in page


def test_html_escapes_client_controlled_text():
    snap = hand_built()
    evil = W(SERVER_BUSY_WRITE, acc=1, pid=100, request='GET /<script>alert("x")</script> HTTP/1.1',
             client="<img src=x>")
    p0 = snap.processes[0]
    p0 = ProcessSnapshot(p0.slot, p0.pid, p0.generation, p0.quiescing, p0.not_accepting, p0.connections,
                         p0.keep_alive, (evil,) + p0.workers[1:])
    snap = ScoreboardSnapshot(snap.server_limit, snap.thread_limit, snap.generation, snap.restart_time,
                              snap.master_pid, (p0,) + snap.processes[1:])
    page = render_html(snap, info(hostname="<b>host</b>", version="v<1>"))
    assert "<script>" not in page and "<img" not in page and "<b>host</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x&gt;" in page


@pytest.fixture
def live_board(tmp_path):
    path = str(tmp_path / "status.sb")
    board = Scoreboard.create(2, 3, path)
    board.generation = 1
    board.process(0).spawned(os.getpid(), 1)
    board.process(0).set_connections(3, 1, 0, 1)
    for t in range(3):
        board.worker(0, t).thread_started(os.getpid(), t, 1)
    w = board.worker(0, 1)
    w.begin_connection("127.0.0.1:5000")
    w.begin_request(b"GET /<hello> HTTP/1.1")
    w.end_request(4096)
    yield board, path
    board.close()


def test_status_main_prints_auto_from_a_scoreboard_file(live_board, capsys):
    _, path = live_board
    assert status_main(["--scoreboard-file", path, "--auto"]) == 0
    _, f, _ = parse_auto(capsys.readouterr().out)
    assert f["Total Accesses"] == "1" and f["Total kBytes"] == "4"
    assert f["BusyWorkers"] == "1" and f["IdleWorkers"] == "2"
    assert f["ConnsTotal"] == "3" and f["Processes"] == "1"
    assert f["ConnsAsyncWriting"] == "1"
    assert f["Scoreboard"] == "_W_..."


def test_status_main_reads_scoreboard_file_from_the_config(live_board, tmp_path, capsys):
    _, path = live_board
    conf = tmp_path / "mpm.conf"
    conf.write_text(f"ScoreBoardFile {path}\nThreadsPerChild 2\nMaxRequestWorkers 2\nServerLimit 2\n"
                    "ThreadLimit 3\nStartServers 1\nMinSpareThreads 1\nMaxSpareThreads 4\n")
    assert status_main(["-f", str(conf), "--html"]) == 0
    page = capsys.readouterr().out
    assert "GET /&lt;hello&gt; HTTP/1.1" in page
    # one server of 2 threads allowed: dead slots past that are left out (Apache 2.4),
    # live ones keep their state
    assert '<pre class="scoreboard">_W_</pre>' in page


def test_status_main_relative_scoreboard_file_is_relative_to_the_config(live_board, tmp_path, capsys):
    conf = tmp_path / "mpm.conf"
    conf.write_text("ScoreBoardFile status.sb\n")
    assert status_main(["-f", str(conf), "--auto"]) == 0
    assert "Scoreboard: _W_" in capsys.readouterr().out


def test_status_main_without_scoreboard_file_explains(tmp_path, capsys):
    conf = tmp_path / "mpm.conf"
    conf.write_text("ThreadsPerChild 5\n")
    assert status_main(["-f", str(conf)]) == 1
    assert "sets no ScoreBoardFile" in capsys.readouterr().err
    assert status_main([]) == 1
    assert "--scoreboard-file PATH" in capsys.readouterr().err


def test_status_main_missing_file_explains(tmp_path, capsys):
    assert status_main(["--scoreboard-file", str(tmp_path / "gone")]) == 1
    err = capsys.readouterr().err
    assert "does not exist; is the server running" in err


def test_status_main_bad_config_explains(tmp_path, capsys):
    assert status_main(["-f", str(tmp_path / "missing.conf")]) == 1
    assert "missing.conf" in capsys.readouterr().err


def test_status_main_watch_refreshes(live_board, capsys):
    board, path = live_board
    assert status_main(["--scoreboard-file", path, "--watch", "--interval", "0.01", "--count", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("Scoreboard:\n") == 3
    # from the second look on, the rate of the moment beside the one since the start
    assert out.count("/s now;") == 2


def test_status_command_runs_as_a_separate_process(live_board):
    _, path = live_board
    out = subprocess.run([sys.executable, "-m", "mpmserver.modules.status", "--scoreboard-file", path, "--auto"],
                         capture_output=True, text=True, timeout=20,
                         cwd=os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 3)))
    assert out.returncode == 0, out.stderr
    assert "Total Accesses: 1\n" in out.stdout


def test_status_watch_into_head_ends_without_a_traceback(live_board):
    # `mpmserver status --watch | head -3`: head exits; status must end quietly.
    _, path = live_board
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 3))
    status = subprocess.Popen([sys.executable, "-m", "mpmserver", "status", "--scoreboard-file", path,
                               "--watch", "--interval", "0.01"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=root)
    head = subprocess.run(["head", "-3"], stdin=status.stdout, capture_output=True, timeout=20)
    status.stdout.close()
    err = status.stderr.read().decode()
    assert status.wait(20) == 0, err
    assert head.stdout.count(b"\n") == 3
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_status_main_prints_a_summary_by_default(live_board, capsys):
    _, path = live_board
    assert status_main(["--scoreboard-file", path]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("mpmserver/") and " (worker MPM) on " in lines[0]
    assert "Children: 1 (0 stopping)   Workers: 1 busy, 2 idle" in out
    assert "Requests: 1 served" in out
    table = lines.index(next(line for line in lines if line.lstrip().startswith("Slot")))
    assert lines[table].split() == ["Slot", "PID", "Gen", "State", "Busy", "Idle", "Conns", "Requests", "RSS"]
    assert lines[table + 1].split()[3:8] == ["serving", "1", "2", "3", "1"]
    # the grid, "." for open slots, as mod_status and apachectl status print it
    assert lines[lines.index("Scoreboard:") + 1] == "_W_..."
    assert '"." Open slot with no current process' in out.replace("\n", " ")


def test_summary_shows_each_childs_memory_and_cuts_the_grid_at_64(capsys):
    from tests.support.snapshots import hand_built
    text = render_summary(hand_built(), info())
    assert "Resident memory: 100.0 MB in 2 children" in text
    rows = [line.split() for line in text.splitlines() if line.lstrip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1"] and [" ".join(r[-2:]) for r in rows] == ["48.0 MB", "52.0 MB"]
    board = Scoreboard.create(2, 40)
    try:
        lines = render_summary(board.snapshot(), info()).splitlines()
        grid = lines[lines.index("Scoreboard:") + 1:lines.index("Scoreboard:") + 3]
        assert grid == ["." * 64, "." * 16]
    finally:
        board.close()
