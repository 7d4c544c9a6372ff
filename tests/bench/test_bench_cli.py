"""`mpmserver bench` end to end against small servers: counts add up, the
JSON schema, every option, and each kind of error."""

import json
import socket
import subprocess
import sys
import threading

import pytest

waitress = pytest.importorskip("waitress")

from mpmserver.bench import main, run  # noqa: E402
from tests.support.timing import timing  # noqa: E402

SCHEMA = {
    "url": str, "method": str, "connections": int, "pipeline": int, "keepalive": bool,
    "procs": int, "event_loop": str, "warmup_s": float, "duration_s": float,
    "requests": int, "responses": int, "errors": dict, "errors_total": int,
    "error_examples": dict, "status": dict, "requests_per_s": float, "bytes_read": int,
    "transfer_bytes_per_s": float, "latency_ms": dict, "generator_cpu": list,
    "generator_saturated": bool, "warnings": list,
}


def check_report(rep):
    for key, typ in SCHEMA.items():
        assert isinstance(rep[key], typ), (key, rep[key])
    assert set(rep["errors"]) == {"connect", "read", "timeout", "reset"}
    assert set(rep["latency_ms"]) >= {"p50", "p90", "p99", "p99.9", "max", "mean", "min"}
    assert rep["requests"] == rep["responses"] + rep["errors_total"]
    assert rep["errors_total"] == sum(rep["errors"].values())
    assert rep["responses"] == sum(rep["status"].values())
    lat = rep["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        ok = environ.get("HTTP_X_TOKEN") == "secret" and len(body) == 10_000
        start_response("201 Created" if ok else "400 Bad Request",
                       [("Content-Length", str(len(body)))])
        return [body]
    if path == "/chunked":
        start_response("200 OK", [])   # no length: waitress sends it chunked
        return [b"Hello, ", b"World!"]
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [body]


@pytest.fixture(scope="module")
def url():
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4,
                                    clear_untrusted_proxy_headers=True)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    th.join(5)


def bench_json(*args, timeout=20):
    """Run the real command line in a subprocess, as a user would."""
    out = subprocess.run([sys.executable, "-m", "mpmserver.bench", *args, "--json"],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_one_second_run_counts_add_up_and_schema(url, record_property):
    rep = bench_json(url + "/", "-c", "8", "-d", "1", "--warmup", "0.2")
    check_report(rep)
    assert rep["responses"] > 100 and rep["errors_total"] == 0
    assert rep["status"] == {"200": rep["responses"]}
    assert rep["duration_s"] > 0.9  # it measured the second asked for (how much longer is a figure)
    timing(record_property, "mpmserver.bench: a 1 s run's measured length", rep["duration_s"], "s", 1.5)
    assert rep["requests_per_s"] == pytest.approx(rep["responses"] / rep["duration_s"])
    assert rep["bytes_read"] > rep["responses"] * 13


def test_request_count_pipelined_in_two_processes(url):
    rep = run([url + "/chunked", "-c", "4", "-n", "600", "--pipeline", "4", "--procs", "2"])
    check_report(rep)
    assert rep["requests"] == rep["responses"] == 600
    assert rep["procs"] == 2 and len(rep["generator_cpu"]) == 2


def test_post_body_file_and_headers(url, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"b" * 10_000)
    rep = run([url + "/echo", "-c", "2", "-n", "50", "--body-file", str(body),
               "-H", "X-Token: secret"])
    check_report(rep)
    assert rep["method"] == "POST" and rep["status"] == {"201": 50}


def test_no_keepalive_reconnects_for_every_request(url):
    rep = run([url + "/", "-c", "2", "-n", "100", "--no-keepalive"])
    check_report(rep)
    assert rep["responses"] == 100 and rep["errors_total"] == 0


def test_open_loop_holds_the_rate(url):
    rep = run([url + "/", "-c", "4", "-d", "1", "--warmup", "0.2", "--rate", "400"])
    check_report(rep)
    assert rep["requests_per_s"] == pytest.approx(400, rel=0.1)
    assert rep["warnings"] == []


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refused_connections_are_connect_errors(capsys):
    rc = main([f"http://127.0.0.1:{closed_port()}/", "-c", "2", "-d", "0.5", "--warmup", "0", "--json"])
    rep = json.loads(capsys.readouterr().out)
    check_report(rep)
    assert rc == 1 and rep["responses"] == 0
    assert rep["errors"]["connect"] == rep["requests"] > 0
    assert "ConnectionRefusedError" in rep["error_examples"]["connect"]


class RawServer:
    """Accepts connections and misbehaves in one way."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.behaviour = behaviour
        self.held = []
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(c)
            try:
                c.recv(4096)
                if self.behaviour == "garbage":
                    c.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
                elif self.behaviour == "reset":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    c.close()
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.mark.parametrize("behaviour, kind", [("silent", "timeout"), ("garbage", "read"),
                                             ("reset", "reset")])
def test_each_error_kind_is_counted(behaviour, kind):
    srv = RawServer(behaviour)
    try:
        rep = run([srv.url, "-c", "2", "-d", "0.6", "--warmup", "0", "--timeout", "0.2"])
    finally:
        srv.close()
    check_report(rep)
    assert rep["responses"] == 0
    assert rep["errors"][kind] > 0
    assert rep["errors"][kind] == rep["errors_total"], rep["errors"]


@pytest.mark.parametrize("argv, message", [
    (["ftp://x/"], "only http://"),
    (["http://127.0.0.1:1/", "--no-keepalive", "--pipeline", "2"], "--pipeline needs keep-alive"),
    (["http://127.0.0.1:1/", "--rate", "-5"], "--rate must be positive"),
])
def test_usage_errors_say_what_to_do(argv, message, capsys):
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_unknown_option_without_app_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["http://127.0.0.1:1/", "--threads-per-child", "4"])
    assert e.value.code == 2
    assert "only go with --app" in capsys.readouterr().err
