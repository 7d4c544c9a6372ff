"""The flags people already type for gunicorn and waitress (issue 14)."""

import os
import subprocess
import sys
import time

import pytest

from mpmserver.cli import build_parser
from mpmserver.config import load, overrides_from_args

from tests.support.server import ROOT, Server, free_port, http, wait_for


def config_of(*argv):
    ns = build_parser().parse_args(list(argv))
    return load(None, overrides_from_args(ns))


def test_w_threads_b_are_fixed_servers_threads_per_child_listen():
    cfg, warnings = config_of("-w", "3", "--threads", "4", "-b", "127.0.0.1:9001", "--bind", "[::1]:9002")
    assert warnings == []
    assert (cfg.fixed_servers, cfg.start_servers, cfg.threads_per_child) == (3, 3, 4)
    assert cfg.max_request_workers == 12 and cfg.server_limit >= 6  # room for a graceful restart
    assert cfg.listen == [("127.0.0.1", 9001), ("::1", 9002)]
    assert config_of("--workers", "2")[0].fixed_servers == 2


def test_threads_per_child_alone_gives_consistent_defaults_not_warnings():
    for threads in ("4", "30", "100"):
        cfg, warnings = config_of("--threads-per-child", threads)
        t = int(threads)
        assert warnings == [], warnings
        assert cfg.threads_per_child == t and cfg.thread_limit >= t
        assert cfg.max_request_workers == cfg.server_limit * t
        assert (cfg.min_spare_threads, cfg.max_spare_threads) == (3 * t, 10 * t)


def test_explicit_settings_are_kept_and_clamped_as_apache_does():
    cfg, warnings = config_of("--threads-per-child", "30", "--max-request-workers", "400")
    assert cfg.max_request_workers == 390 and "not an integer multiple" in warnings[0]


def test_fixed_pool_stays_at_exactly_n_children(tmp_path):
    # 2 x 4 with MinSpareThreads 75 once grew to 9 children; -w 2 stays at 2,
    # idle or loaded, for several maintenance cycles (one a second).
    s = Server("-w", "2", "--threads", "4", tmp_path=tmp_path).start()
    try:
        first = set(wait_for(lambda: len(s.children()) == 2 and s.children(), 10, what="2 children"))
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            assert http(s.port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
            assert set(s.children()) == first, "the fixed pool changed"
            time.sleep(0.05)
        assert "2 children x 4 threads (fixed)" in s.stderr
    finally:
        s.stop()


def test_bind_flag_serves(tmp_path):
    port = free_port()
    conf = tmp_path / "empty.conf"  # no Listen: -b alone says where
    conf.write_text("")
    s = Server("-b", f"127.0.0.1:{port}", "-w", "1", config=str(conf), tmp_path=tmp_path, port=port)
    try:
        s.start()
        assert http(port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
    finally:
        s.stop()


def test_mpmserver_cmd_args_are_read_like_gunicorn_cmd_args(tmp_path):
    # As GUNICORN_CMD_ARGS: shell-quoted flags applied before the command
    # line, whose flags win (its --listen replaces the environment's).
    env_port = free_port()
    env = {"MPMSERVER_CMD_ARGS": f"-w 2 --threads 3 --listen 127.0.0.1:{env_port} --health-path '/healthz'"}
    s = Server("--threads", "2", tmp_path=tmp_path, env=env).start()
    try:
        assert http(s.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").startswith(
            b"HTTP/1.1 200")
        wait_for(lambda: "2 children x 2 threads (fixed)" in s.stderr, 10, what="the start-up line")
        with pytest.raises(OSError):
            http(env_port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", timeout=2)
    finally:
        s.stop()


def test_mpmserver_cmd_args_that_do_not_parse_say_so():
    env = {**os.environ, "MPMSERVER_CMD_ARGS": "--workers 2 --no-such-flag"}
    out = subprocess.run([sys.executable, "-m", "mpmserver", "-t"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "mpmserver (MPMSERVER_CMD_ARGS): error: unrecognized arguments: --no-such-flag" in out.stderr
    env["MPMSERVER_CMD_ARGS"] = "--timeout '30"
    out = subprocess.run([sys.executable, "-m", "mpmserver", "-t"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert (out.returncode, out.stderr) == (2, "mpmserver: MPMSERVER_CMD_ARGS: No closing quotation\n")
