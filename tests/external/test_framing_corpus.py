"""The differential HTTP/1.1 framing corpus (issue 25 item 5): every case of
tests/external/framing_corpus.py sent to mpmserver, gunicorn, waitress and
Apache + mod_wsgi (each started once for the module, all serving
tests/apps/framing_echo.py), and through nginx, HAProxy and Apache mod_proxy
in front of mpmserver.

Asserted: mpmserver never accepts what every peer refuses (unless the corpus
documents why), never answers more requests than were sent, and its app never
sees a request hidden in a body that no peer's app saw; behind each proxy,
every request mpmserver's app saw is answered to the client that sent it (the
proxy's view of the requests is the back end's). The table of disagreements
is printed in the terminal summary ("framing corpus")."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.external.framing_corpus import CORPUS, EXCEPTIONS, Case
from tests.support import haproxy, peers
from tests.support.framing import Answer, desyncs, run_cases
from tests.support.server import Server, free_port

pytestmark = pytest.mark.external

APP = "tests.apps.framing_echo:app"
PEERS = ("gunicorn", "waitress", "apache")
MPM_ARGS = ("--start-servers", "1", "--threads-per-child", "8", "--min-spare-threads", "1",
            "--max-spare-threads", "64", "--max-request-workers", "16")

needs_apache = pytest.mark.skipif(peers.APACHE_MODULES is None, reason=f"Apache: {peers.APACHE_MISSING}")


def _send(port: int) -> list[Answer]:
    return run_cases(port, [c.raw for c in CORPUS])


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict[str, list[Answer]]:
    """Each server's answer to every case, the four servers at once."""
    if peers.APACHE_MODULES is None:
        pytest.skip(f"Apache + mod_wsgi: {peers.APACHE_MISSING}")
    missing = [m for m in ("gunicorn", "waitress") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("corpus")
    started = []
    try:
        mpm = Server(*MPM_ARGS, app=APP, tmp_path=tmp)
        started.append(mpm)
        mpm.start()
        ports = {"mpmserver": mpm.port}
        for name, start in (("gunicorn", peers.gunicorn), ("waitress", peers.waitress)):
            ports[name] = free_port()
            started.append(start(APP, ports[name]))
        ports["apache"] = free_port()
        started.append(peers.apache_wsgi(APP, ports["apache"], extra="WSGIChunkedRequest On\n"))
        with ThreadPoolExecutor(len(ports)) as pool:
            results = dict(zip(ports, pool.map(_send, ports.values())))
    finally:
        for s in reversed(started):
            s.stop()
    return results


def row(case: Case, answers: dict[str, list[Answer]], i: int) -> str:
    cells = "  ".join(f"{name}={answers[name][i].short():<7}" for name in ("mpmserver", *PEERS))
    note = f"  [{EXCEPTIONS[case.name]}]" if case.name in EXCEPTIONS else ""
    return f"{case.name:<40} {cells}{note}"


def laxer(answers: dict[str, list[Answer]]) -> list[int]:
    """Cases where mpmserver gives the app what some peer refuses."""
    return [i for i in range(len(CORPUS)) if answers["mpmserver"][i].accepted
            and not all(answers[p][i].accepted for p in PEERS)]


def stricter(answers: dict[str, list[Answer]]) -> list[int]:
    return [i for i in range(len(CORPUS)) if not answers["mpmserver"][i].accepted
            and any(answers[p][i].accepted for p in PEERS)]


def test_disagreements_table(answers, record_property):
    """Not a check: the table a reader looks at (tests/external/conftest.py
    prints it in the terminal summary)."""
    lines = [f"{len(CORPUS)} cases; answers as <first status>x<responses> ('-': none within the deadline)",
             "mpmserver laxer than the strictest peer (2xx to the app where a peer refuses):",
             *(row(CORPUS[i], answers, i) for i in laxer(answers)),
             "mpmserver stricter than some peer (refuses what a peer gives its app):",
             *(row(CORPUS[i], answers, i) for i in stricter(answers))]
    record_property("framing_corpus", "\n".join(lines))
    assert len(answers["mpmserver"]) == len(CORPUS)


def test_mpmserver_never_accepts_what_every_peer_refuses(answers):
    bad = [row(CORPUS[i], answers, i) for i in laxer(answers)
           if not any(answers[p][i].accepted for p in PEERS) and CORPUS[i].name not in EXCEPTIONS]
    assert not bad, "mpmserver gives the app what every peer refuses:\n" + "\n".join(bad)


def test_mpmserver_laxer_than_the_strictest_peer_only_where_documented(answers):
    """Where a peer answers 4xx/5xx (not a timeout, which load can cause)
    and mpmserver serves, framing_corpus.EXCEPTIONS says why."""
    bad = [row(CORPUS[i], answers, i) for i in laxer(answers) if CORPUS[i].name not in EXCEPTIONS
           and any((answers[p][i].status or 0) >= 400 for p in PEERS)]
    assert not bad, ("mpmserver serves what a peer refuses, not in framing_corpus.EXCEPTIONS: fix it in "
                     "mpmserver/http/protocol.py or document why:\n" + "\n".join(bad))


def test_mpmserver_answers_no_more_requests_than_were_sent(answers):
    bad = [row(c, answers, i) for i, c in enumerate(CORPUS) if answers["mpmserver"][i].responses > c.requests]
    assert not bad, "more responses than requests:\n" + "\n".join(bad)


def test_mpmserver_app_sees_no_hidden_request_no_peer_sees(answers):
    """A request inside a body reaches mpmserver's app only where some peer's
    app also takes it for a request (the framing everyone agrees on)."""
    def smuggled(name: str, i: int) -> bool:
        return any(seen[1] == "/smuggled" for seen in answers[name][i].seen)
    bad = [row(c, answers, i) for i, c in enumerate(CORPUS)
           if smuggled("mpmserver", i) and not any(smuggled(p, i) for p in PEERS)]
    assert not bad, "mpmserver's app saw a request hidden in a body:\n" + "\n".join(bad)


# -- behind the proxies ---------------------------------------------------------

@pytest.fixture
def backend(tmp_path):
    """mpmserver serving the echo app, which logs every request it sees to a
    file its children (nobody when run as root) can write."""
    top = Path(tempfile.mkdtemp(prefix="mpmserver-corpus-"))
    top.chmod(0o755)
    log = top / "seen.jsonl"
    log.touch(0o666)
    log.chmod(0o666)
    s = Server(*MPM_ARGS, app=APP, tmp_path=tmp_path, env={"FRAMING_ECHO_LOG": str(log)})
    try:
        s.start()
        yield s, log, top
    finally:
        s.stop()
        shutil.rmtree(top, ignore_errors=True)


def start_proxy(kind: str, port: int, upstream: int, top: Path):
    if kind == "nginx":
        return peers.nginx(port, upstream, top / "nginx")
    if kind == "apache-proxy":
        return peers.apache_proxy(port, upstream)
    return peers.Haproxy(port, upstream, top)


PROXIES = [
    pytest.param("nginx", marks=pytest.mark.skipif(peers.NGINX is None, reason="nginx is not installed")),
    pytest.param("haproxy", marks=pytest.mark.skipif(not haproxy.HAPROXY, reason=haproxy.MISSING)),
    pytest.param("apache-proxy", marks=needs_apache),
]


@pytest.mark.parametrize("kind", PROXIES)
def test_no_desync_behind_proxy(backend, kind):
    server, log, top = backend
    port = free_port()
    proxy = start_proxy(kind, port, server.port, top)
    try:
        log.write_bytes(b"")  # the proxy's readiness probe is not part of the corpus
        got = run_cases(port, [c.raw for c in CORPUS])
    finally:
        proxy.stop()
    # Not vacuous: many probes went through the proxy to the app and back.
    probes = sum(1 for a in got if any(s[1] == "/probe" for s in a.seen))
    assert probes > len(CORPUS) // 3, f"{kind}: only {probes} of {len(CORPUS)} probes answered by the app"
    problems = desyncs(got, log.read_text().splitlines())
    assert not problems, f"{kind}: the proxy and mpmserver read the requests differently:\n" + "\n".join(
        f"{CORPUS[i].name if i is not None else '?'}: {what}" for i, what in problems)
