"""benchmarks/compare.py's pure parts, and reading wrk's output."""

import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest

from mpmserver.bench.wrk import parse_wrk

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"

WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18081/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.36ms    1.22ms  10.59ms   88.00%
    Req/Sec     6.82k     3.23k   10.83k    50.00%
  Latency Distribution
     50%  880.00us
     75%    1.58ms
     90%    2.80ms
     99%    1.02s
  6790 requests in 1.00s, 1.02MB read
  Socket errors: connect 0, read 28, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:   6782.42
Transfer/sec:      1.02MB
"""


def test_parse_wrk_output():
    r = parse_wrk(WRK_OUTPUT)
    assert r["requests_per_s"] == 6782.42
    assert r["latency_ms"] == {"p50": pytest.approx(0.88), "p75": 1.58, "p90": 2.80, "p99": 1020.0}
    assert r["requests"] == 6790 and r["duration_s"] == 1.0
    assert r["errors"] == {"connect": 0, "read": 28, "write": 0, "timeout": 2}
    assert r["non_2xx"] == 5


def test_parse_wrk_rejects_other_text():
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


@pytest.fixture(scope="module")
def compare():
    if not COMPARE.is_file():
        pytest.skip("benchmarks/compare.py is not in this checkout")
    spec = importlib.util.spec_from_file_location("bench_compare", COMPARE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def run(rps, p50=1.0, p99=5.0, failed=0, closed=0):
    return {"rps": rps, "p50": p50, "p99": p99, "failed": failed, "closed": closed, "percentiles": {}}


def test_summary_uses_medians_and_ratios_to_mpmserver(compare):
    rows = compare.summarize({"mpmserver": [run(100), run(300), run(200)],
                              "gunicorn": [run(50, 2.0), run(150, 4.0), run(100, 3.0, failed=1, closed=7)]})
    by = {r["server"]: r for r in rows}
    assert by["mpmserver"]["rps"] == 200 and by["mpmserver"]["ratio"] == 1.0
    assert by["gunicorn"]["rps"] == 100 and by["gunicorn"]["ratio"] == 0.5
    assert by["gunicorn"]["p50"] == 3.0 and by["gunicorn"]["failed"] == 1 and by["gunicorn"]["closed"] == 7
    assert (by["gunicorn"]["rps_min"], by["gunicorn"]["rps_max"]) == (50, 150)


def test_without_mpmserver_ratios_are_undefined(compare):
    rows = compare.summarize({"waitress": [run(10)]})
    assert math.isnan(rows[0]["ratio"])


def test_tables(compare):
    rows = compare.summarize({"mpmserver": [run(1000)], "waitress": [run(800)]})
    md = compare.format_table(rows, markdown=True).splitlines()
    assert md[0].startswith("| server | req/s") and md[1].startswith("|---")
    assert "| waitress | 800 |" in md[3] and "0.80x" in md[3]
    text = compare.format_table(rows).splitlines()
    assert text[1].split()[:2] == ["mpmserver", "1000"] and "0.80x" in text[2]


def test_the_table_shows_each_servers_memory(compare):
    rows = compare.summarize({"mpmserver": [dict(run(1000), pss_mib=70.0), dict(run(900), pss_mib=74.0)],
                              "waitress": [run(800)]})
    text = compare.format_table(rows).splitlines()
    assert text[0].rstrip().endswith("PSS MiB")
    assert text[1].split()[-1] == "72.0" and text[2].split()[-1] == "-"


def test_missing_peers_are_skipped_with_a_note(compare, monkeypatch):
    monkeypatch.setattr(compare.shutil, "which", lambda name: None)
    real = compare.importlib.util.find_spec
    monkeypatch.setattr(compare.importlib.util, "find_spec",
                        lambda name: None if name == "waitress" else real(name))
    ps = {p.name: p for p in compare.peers("benchmarks.apps:plaintext", 2, 4, lambda n: 1)}
    assert ps["mpmserver"].available
    assert not ps["uwsgi"].available and "not installed" in ps["uwsgi"].note
    assert not ps["waitress"].available and "pip install waitress" in ps["waitress"].note
    cmd = ps["mpmserver"].command
    assert cmd[cmd.index("-w") + 1] == "2" and cmd[cmd.index("--threads") + 1] == "4" and "--access-log" in cmd
    # Its defaults (Apache's keep-alive), and the bench's keep-alive as a second row.
    assert "--max-keep-alive-requests" not in cmd
    ka = ps["mpmserver-ka"].command
    assert ka[ka.index("--max-keep-alive-requests") + 1] == "0" and ka[ka.index("--keep-alive-timeout") + 1] == "60"


def test_every_peer_runs_at_the_same_processes_and_threads(compare):
    ps = {p.name: p for p in compare.peers("benchmarks.apps:app", 2, 4, lambda n: 1)}
    assert set(ps) == set(compare.PEER_NAMES)
    flags = {"gunicorn": ("-w", "2", "--threads", "4"), "granian": ("--workers", "2", "--blocking-threads", "4"),
             "uwsgi": ("--processes", "2", "--threads", "4"), "waitress": ("--threads", "8"),
             "cheroot": ("--threads", "8", "--max-threads", "8")}
    for name, pairs in flags.items():
        if not ps[name].available:
            continue
        cmd = ps[name].command
        for flag, value in zip(pairs[::2], pairs[1::2]):
            assert cmd[cmd.index(flag) + 1] == value, (name, flag)
    if ps["granian"].available:
        assert ps["granian"].command[ps["granian"].command.index("--interface") + 1] == "wsgi"


def _no_measuring(*a, **k):
    raise AssertionError("measured before checking its arguments")


def test_unknown_peer_is_rejected_before_anything_runs(compare, monkeypatch, capsys):
    monkeypatch.setattr(compare, "measure", _no_measuring)
    with pytest.raises(SystemExit) as ei:
        compare.main(["--servers", "mpmserver,gunicron"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "unknown server 'gunicron'" in err and "gunicorn" in err


def test_plot_without_matplotlib_fails_before_measuring(compare, monkeypatch, capsys):
    monkeypatch.setattr(compare, "measure", _no_measuring)
    monkeypatch.setattr(compare, "have_matplotlib", lambda: False)
    with pytest.raises(SystemExit) as ei:
        compare.main(["--servers", "mpmserver", "--plot", "x.png"])
    assert ei.value.code == 2 and "needs matplotlib" in capsys.readouterr().err


def test_plot_shows_p99_beside_rps_the_distribution_and_no_labels_overlap(compare, tmp_path):
    pytest.importorskip("matplotlib")
    pcts = {50.0: 1.0, 90.0: 2.0, 99.0: 6.5, 99.9: 20.0, 99.99: 40.0}
    runs = {name: [dict(run(rps, p99=p99), percentiles={p: v * k for p, v in pcts.items()})]
            for name, rps, p99, k in (("mpmserver", 17366, 6.55, 1), ("gunicorn 27 gthread", 10148, 15.35, 2),
                                      ("waitress 3.0", 4522, 15.02, 3), ("uwsgi 2.0", 9000, 9.1, 1.5))}
    rows = compare.summarize(runs)
    title = "benchmarks.apps:plaintext, 2 processes x 4 threads, 32 connections, load: wrk, 3 x 5 s " * 2
    fig = compare.plot(rows, str(tmp_path / "c.png"), title)
    assert (tmp_path / "c.png").stat().st_size > 0
    ax_rps, ax_p99, ax_dist = fig.axes
    assert "requests/s" in ax_rps.get_ylabel() and "p99" in ax_p99.get_ylabel()
    assert [round(b.get_height(), 2) for b in ax_p99.patches] == [6.55, 15.35, 15.02, 9.1]
    # One latency curve per server, through every percentile recorded.
    lines = {ln.get_label(): ln for ln in ax_dist.get_lines()}
    assert set(lines) == {r["server"] for r in rows}
    assert list(lines["gunicorn 27 gthread"].get_ydata()) == [2.0, 4.0, 13.0, 40.0, 80.0]
    fig.canvas.draw()  # lay out at the canvas dpi before measuring
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(match=lambda o: hasattr(o, "get_window_extent") and hasattr(o, "get_text"))
             if t.get_text().strip() and t.get_visible() and t.axes is not ax_dist]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}: {box_a} {box_b}"


# -- workloads, and Apache httpd + mod_wsgi (issue 15) --------------------------


def test_unknown_workload_is_rejected_before_anything_runs(compare, monkeypatch, capsys):
    monkeypatch.setattr(compare, "measure", _no_measuring)
    with pytest.raises(SystemExit) as ei:
        compare.main(["--servers", "mpmserver", "--workloads", "plaintext,keepalive"])
    assert ei.value.code == 2 and "unknown workload 'keepalive'" in capsys.readouterr().err


def test_every_workload_of_the_issue_is_there(compare):
    w = compare.WORKLOADS
    assert list(w) == ["plaintext", "close", "post10k", "idle1000", "sleep10ms"]
    assert not w["close"].keepalive and w["post10k"].method == "POST" and len(w["post10k"].body) == 10_240
    assert w["idle1000"].idle == 1000 and w["sleep10ms"].connections == 64 and w["sleep10ms"].path == "/sleep"


def test_wrk_command_per_workload(compare, tmp_path):
    url = "http://127.0.0.1:1/plaintext"
    close = compare.wrk_command(url, compare.WORKLOADS["close"], 32, 5, str(tmp_path))
    assert close[close.index("-H") + 1] == "Connection: close" and "-c32" in close and close[-1] == url
    post = compare.wrk_command(url, compare.WORKLOADS["post10k"], 32, 5, str(tmp_path))
    script = (tmp_path / "post10k.lua").read_text()
    assert post[post.index("-s") + 1] == str(tmp_path / "post10k.lua")
    assert 'wrk.method = "POST"' in script and 'string.rep("x", 10240)' in script
    plain = compare.wrk_command(url, compare.WORKLOADS["plaintext"], 32, 5, str(tmp_path))
    assert "-H" not in plain and "wrk.method" not in (tmp_path / "plaintext.lua").read_text()
    # Every script prints the latency distribution (wrk --latency stops at p99).
    assert "latency:percentile(p)" in script and "99.9" in script


WRK_WITH_SCRIPT = WRK_OUTPUT + "latency-us 50=880 75=1580 90=2800 95=4000 99=12500 99.5=20000 99.9=61000 99.99=90000\n"


def test_closed_connections_are_not_failed_requests(compare):
    r = compare.wrk_result(WRK_WITH_SCRIPT)
    # read errors: a kept-alive connection the server closed under the client
    assert r["closed"] == 28
    # connect + write + timeout errors and non-2xx responses
    assert r["failed"] == 0 + 0 + 2 + 5
    assert (r["p50"], r["p99"], r["p999"]) == (0.88, 12.5, 61.0) and r["percentiles"][99.99] == 90.0
    assert r["requests"] == 6790


def test_without_the_distribution_line_wrks_own_percentiles_are_used(compare):
    r = compare.wrk_result(WRK_OUTPUT)
    assert r["p99"] == 1020.0 and math.isnan(r["p999"]) and r["percentiles"] == {}


def test_open_loop_table_compares_p99_at_the_same_share(compare):
    rows = [{"server": "mpmserver", "pct": 80, "rate": 8000, "rps": 7990, "p50": 1, "p99": 4.0, "p999": 9,
             "failed": 0},
            {"server": "gunicorn", "pct": 80, "rate": 4000, "rps": 3000, "p50": 2, "p99": 8.0, "p999": 30,
             "failed": 1}]
    lines = compare.format_open_loop(rows, markdown=True).splitlines()
    assert "| mpmserver | 80% | 8000 | 7990 |" in lines[2] and "1.00x" in lines[2]
    assert "3000 (not sustained)" in lines[3] and "0.50x" in lines[3]


def test_grid_has_a_cell_per_workload_and_server(compare):
    tables = {"plaintext": compare.summarize({"mpmserver": [dict(run(1000, 1.0, 5.0), p999=9.0)],
                                              "granian": [dict(run(4000, 0.5, 2.0), p999=3.0)]})}
    line = compare.format_grid(tables, ["mpmserver", "granian"], markdown=True).splitlines()[2]
    assert line == "| plaintext | 1,000, 1.00/5.00/9.00 | 4,000, 0.50/2.00/3.00, 0.25x |"


def test_rounds_rotate_who_goes_first(compare):
    order = ["a", "b", "c"]
    assert [compare.rotation(order, r)[0] for r in range(4)] == ["a", "b", "c", "a"]


def test_bad_open_loop_is_rejected_before_anything_runs(compare, monkeypatch, capsys):
    monkeypatch.setattr(compare, "measure", _no_measuring)
    with pytest.raises(SystemExit) as ei:
        compare.main(["--servers", "mpmserver", "--open-loop", "50,180"])
    assert ei.value.code == 2 and "between 0 and 100" in capsys.readouterr().err


def test_summary_divides_mpmserver_by_each_peer(compare):
    tables = {"close": compare.summarize({"mpmserver": [run(900)], "apache": [run(1000)], "waitress": [run(0)]})}
    line = compare.format_summary(tables, ["mpmserver", "apache", "waitress"], markdown=True).splitlines()[2]
    assert line.startswith("| close | 900 | 0.90x |") and "waitress served 0" in line


def test_apache_config_has_the_same_processes_and_threads(compare):
    conf = compare.apache_config("/tmp/sr", 18080, 2, 4, "/usr/lib/apache2/modules", "/tmp/sr/app.wsgi",
                                 user="www-data")
    lines = conf.splitlines()
    for directive in ("StartServers 2", "ServerLimit 2", "ThreadsPerChild 4", "ThreadLimit 4",
                      "MaxRequestWorkers 8", "Listen 127.0.0.1:18080", "User www-data", "Group www-data",
                      "KeepAlive On", "KeepAliveTimeout 5", "MaxKeepAliveRequests 100",
                      'PidFile "/tmp/sr/httpd.pid"', 'ServerRoot "/tmp/sr"', "WSGIApplicationGroup %{GLOBAL}",
                      'WSGIScriptAlias / "/tmp/sr/app.wsgi"',
                      "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so",
                      "LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so"):
        assert directive in lines, directive
    # Embedded mode (the app in Apache's own threads), loopback only.
    assert "WSGIDaemonProcess" not in conf and [ln for ln in lines if ln.startswith("Listen")] == [
        "Listen 127.0.0.1:18080"]
    assert "User" not in compare.apache_config("/r", 1, 1, 1, "/m", "/r/a.wsgi")
    ka = compare.apache_config("/r", 1, 2, 4, "/m", "/r/a.wsgi", bench_keepalive=True).splitlines()
    assert "KeepAliveTimeout 60" in ka and "MaxKeepAliveRequests 0" in ka


def test_apache_config_is_the_documented_one(compare):
    """docs/benchmarking.md shows the httpd.conf compare.py writes for the
    table's Apache column, as it writes it (a root run, 2 x 4)."""
    doc = (COMPARE.parents[1] / "docs" / "benchmarking.md").read_text()
    marker = "<!-- compare.py apache_config(2, 4) -->\n```apache\n"
    assert marker in doc, "docs/benchmarking.md lost its Apache configuration block"
    shown = doc.split(marker, 1)[1].split("```", 1)[0]
    written = compare.apache_config("SERVER_ROOT", "PORT", 2, 4, "/usr/lib/apache2/modules",
                                    "SERVER_ROOT/app.wsgi", user="www-data")
    assert shown == written


def test_apache_root_holds_a_loadable_app_and_is_removed(compare):
    """The ServerRoot (no Apache needed): the .wsgi script loads the copied
    module the way mod_wsgi does, every file is readable by the children's
    user, and cleanup removes it."""
    import os
    import runpy

    root = compare.ApacheRoot("benchmarks.apps:app", 18081, 2, 4, "/nonexistent/modules")
    try:
        root.prepare()
        for name in ("httpd.conf", "app.wsgi", "app_module.py"):
            assert os.stat(os.path.join(root.root, name)).st_mode & 0o444 == 0o444
        assert os.stat(root.root).st_mode & 0o755 == 0o755
        assert "ThreadsPerChild 4" in open(os.path.join(root.root, "httpd.conf")).read()
        assert root.command("/usr/sbin/apache2")[-1] == "-DFOREGROUND"
        # The script registers the copy as benchmarks.apps, as it does in
        # mod_wsgi's interpreter; this process's own entry is put back.
        saved = sys.modules.pop("benchmarks.apps", None)
        try:
            ns = runpy.run_path(os.path.join(root.root, "app.wsgi"))
            assert sys.modules["benchmarks.apps"].__file__ == os.path.join(root.root, "app_module.py")
        finally:
            if saved is None:
                sys.modules.pop("benchmarks.apps", None)
            else:
                sys.modules["benchmarks.apps"] = saved
        out = []
        body = ns["application"]({"PATH_INFO": "/plaintext"}, lambda s, h: out.append(s))
        assert out == ["200 OK"] and b"".join(body) == b"Hello, World!"
    finally:
        path = root.root
        root.cleanup()
    assert not os.path.exists(path)


@pytest.mark.external
def test_apache_round(compare):
    """A tiny round against a real Apache + mod_wsgi, when installed: it
    starts from the written config, serves keep-alive and Connection: close
    requests, and is stopped and cleaned up."""
    import os

    from mpmserver.bench.cputime import session_cpu_seconds
    from mpmserver.bench.server import ServerProcess, free_port

    binary, module_dir, why = compare.find_apache()
    if module_dir is None:
        pytest.skip(f"Apache httpd + mod_wsgi: {why}")
    port = free_port()
    peer = compare.apache_peer("benchmarks.apps:app", 1, 2, port)
    assert peer.available, peer.note
    srv = None
    try:
        peer.prepare()
        root = peer.apache_root.root
        srv = ServerProcess(peer.command, compare.HOST, port, name="apache", ready_path="/plaintext",
                            cwd=str(COMPARE.parents[1]), new_session=True)
        srv.start(30)
        for name in ("plaintext", "close"):
            r = compare.measure("bench", f"http://{compare.HOST}:{port}/plaintext", compare.WORKLOADS[name],
                                2, 0.5, 0.0)
            assert r["rps"] > 0 and r["failed"] == 0, (name, r)
        pid = peer.apache_root.pid()
        assert pid == srv.proc.pid
        # In a session of its own, as compare.py starts every peer, and its
        # CPU time is read from every process of that session.
        assert os.getsid(pid) == pid and session_cpu_seconds(pid) > 0
    finally:
        if srv is not None:
            srv.stop()
        peer.cleanup()
    assert not os.path.exists(root)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.external
def test_compare_end_to_end(tmp_path):
    """compare.py itself, for a second per run: mpmserver and Apache +
    mod_wsgi under wrk, an open-loop run, every table and the plot."""
    import shutil
    import subprocess

    from mpmserver.bench.wrk import wrk_path

    if wrk_path() is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    pytest.importorskip("matplotlib")
    cmd = [sys.executable, str(COMPARE), "--servers", "mpmserver,apache", "--workloads", "plaintext",
           "-d", "1", "--rounds", "1", "--open-loop", "50", "--plot", str(tmp_path / "p.png")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=COMPARE.parents[1])
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    text = out.stdout
    assert "p99.9 ms" in text and "closed" in text and "CPU us/req" in text and "open loop" in text
    assert "PSS MiB" in text
    assert (tmp_path / "p.png").stat().st_size > 0
    rows = [ln.split() for ln in text.splitlines() if ln.startswith("mpmserver ")]
    assert rows and float(rows[0][1]) > 0, text
    if shutil.which("apache2") or os.path.exists("/usr/sbin/apache2"):
        assert any(ln.startswith("apache ") for ln in text.splitlines()) or "apache: skipped" in text


def test_tls_peers_speak_https_with_the_same_certificate(compare):
    """--tls (issue 24): mpmserver, Apache + mod_ssl and gunicorn speak HTTPS
    with one certificate; the peers without TLS are skipped with a note."""
    tls = compare.TLSFiles("/c/cert.pem", "/c/key.pem", "/c/ca.pem")
    ps = {p.name: p for p in compare.peers("benchmarks.apps:app", 2, 4, lambda n: 1234, tls)}
    for name in ("mpmserver", "mpmserver-ka"):
        mpm = ps[name].command
        assert mpm[mpm.index("--listen") + 1] == "127.0.0.1:1234 https"
        assert mpm[mpm.index("--certfile") + 1] == "/c/cert.pem" and mpm[mpm.index("--keyfile") + 1] == "/c/key.pem"
    if ps["gunicorn"].available:
        g = ps["gunicorn"].command
        assert g[g.index("--certfile") + 1] == "/c/cert.pem"
    assert not any(ps[n].available for n in ("waitress", "uwsgi", "cheroot", "granian"))
    conf = compare.apache_config("/r", 1234, 2, 4, "/m", "/r/app.wsgi", tls=tls)
    assert "Listen 127.0.0.1:1234 https" in conf and "SSLEngine on" in conf
    assert 'SSLCertificateFile "/c/cert.pem"' in conf and "LoadModule ssl_module /m/mod_ssl.so" in conf
    assert "SSLEngine" not in compare.apache_config("/r", 1234, 2, 4, "/m", "/r/app.wsgi")
