"""Every shell example in the README and the docs is either run by a test
or says why it is not run here (issue 26). The line before each fenced
block of shell (sh, bash, shell, console; or any block whose lines start
with `$ ` or a command) is one of

    <!-- run by PATH[, PATH ...] -->      each command of the block is
                                           written, as it is, in one of
                                           those files, which runs it
    <!-- not run here: REASON -->

and the commands this file names in RUN_HERE are run here, as written."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.server import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
SHELL = {"sh", "bash", "shell", "console"}
COMMANDS = ("mpmserver", "sudo", "pip", "python", "pytest", "curl", "docker", "kubectl", "systemctl", "chown",
            "$ ")
MARK = re.compile(r"<!-- (?:run by (?P<files>[^>]+?)|not run here: (?P<reason>[^>]+?)) -->\Z")

# The README's commands this test runs (from the repository's root, with
# this Python's mpmserver), and what each must print.
RUN_HERE = {
    "mpmserver -t -f conf/mpmserver.conf": "Syntax OK",
    "mpmserver --help": "configuration directives",
    "mpmserver --version": "mpmserver/",
}


def blocks(path):
    """(line number, info string, lines, the line before) of each fenced block."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(```+|~~~+)(.*)$", lines[i])
        if m:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(m.group(1)))
            out.append((i + 1, m.group(2).strip(), lines[i + 1:end], lines[i - 1] if i else ""))
            i = end
        i += 1
    return out


def is_shell(info: str, body: list[str]) -> bool:
    if info.split(" ")[0] in SHELL:
        return True
    return not info and any(line.startswith(COMMANDS) for line in body if "<!-- include:" not in line)


def commands(body: list[str]) -> list[str]:
    """The commands of a block: `$ ` lines if it has any (the rest is output),
    else every line; without trailing comments."""
    prompted = [line[2:] for line in body if line.startswith("$ ")]
    lines = prompted or body
    return [re.sub(r"\s{2,}#.*$", "", line).strip() for line in lines
            if line.strip() and not line.lstrip().startswith("#")]


def shell_examples():
    for path in PAGES:
        for number, info, body, before in blocks(path):
            if is_shell(info, body):
                yield f"{path.relative_to(ROOT)}:{number}", body, before.strip()


EXAMPLES = list(shell_examples())


def test_the_pages_have_shell_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("where, body, before", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_each_shell_example_is_run_or_says_why_not(where, body, before):
    m = MARK.match(before)
    assert m, f"{where}: put <!-- run by FILE --> or <!-- not run here: REASON --> on the line before the block"
    if m.group("reason"):
        assert len(m.group("reason").split()) >= 3, f"{where}: say why it is not run"
        return
    files = [ROOT / f.strip() for f in m.group("files").split(",")]
    for f in files:
        assert f.is_file(), f"{where}: {f} does not exist"
    texts = [f.read_text() for f in files]
    for command in commands(body):
        assert any(command in t for t in texts), f"{where}: {command!r} is not in {m.group('files')}"


@pytest.mark.parametrize("command", sorted(RUN_HERE))
def test_the_readme_commands_run_here(command):
    assert any(command in commands(body) for _, body, before in EXAMPLES if "tests/docs/test_examples.py" in before)
    argv = [sys.executable, "-m", "mpmserver", *command.split()[1:]]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert RUN_HERE[command] in done.stdout
