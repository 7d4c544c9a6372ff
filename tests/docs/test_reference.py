"""The directive reference (docs/directives.md) is config.py's directive
table with its notes (docs/directive-notes.toml): every directive has
Apache's meaning and how mpmserver differs, the committed page is what the
generator writes from the table now, and every flag `mpmserver --help`
shows is on it (issue 26)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

from mpmserver import config
from tests.support.server import ROOT


def generator():
    spec = importlib.util.spec_from_file_location("gen_directives", ROOT / "docs" / "gen_directives.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = generator()
PAGE = (ROOT / "docs" / "directives.md").read_text()


def test_every_directive_has_its_notes():
    assert GEN.missing_notes(GEN.load_notes()) == []


def test_a_directive_without_notes_is_found():
    notes = GEN.load_notes()
    del notes["ThreadsPerChild"]
    notes["NoSuchDirective"] = {"apache": "", "differs": ""}
    assert GEN.missing_notes(notes) == [
        "ThreadsPerChild: no [ThreadsPerChild] table with apache and differs in directive-notes.toml",
        "NoSuchDirective: in directive-notes.toml but not a directive"]


def test_the_committed_page_is_the_table_now():
    assert PAGE == GEN.render(), "docs/directives.md is stale: run python docs/gen_directives.py"
    check = subprocess.run([sys.executable, "docs/gen_directives.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_each_directive_shows_its_flag_alias_default_and_notes():
    notes = GEN.load_notes()
    for d in config.DIRECTIVES.values():
        section = PAGE.split(f"\n### {d.name}\n", 1)[1].split("\n### ", 1)[0]
        assert f"- **Default:** `{config._default_text(d)}`" in section, d.name
        if d.flag:
            assert f"`--{d.flag} " in section, d.name
        for alias in config.FLAG_ALIASES.get(d.name, ()):
            assert f"`{alias}`" in section, (d.name, alias)
        assert notes[d.name]["apache"] in section and notes[d.name]["differs"] in section, d.name


def test_every_flag_of_mpmserver_help_is_in_the_reference():
    out = subprocess.run([sys.executable, "-m", "mpmserver", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, env={"COLUMNS": "200", "PATH": ""})
    assert out.returncode == 0, out.stderr
    group = out.stdout.split("configuration directives:", 1)[1]
    shown = re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]+)", group, re.M)
    names = re.findall(r"^\s+-.*?\n?\s+([A-Z][A-Za-z]+): ", group, re.M)
    assert len(shown) == len([d for d in config.DIRECTIVES.values() if d.flag]) > 50
    every = re.findall(r"(?:^\s+|, )(-{1,2}[a-z][a-z-]*)", group, re.M)  # with the aliases (-w, --bind)
    assert set(shown) < set(every)
    for flag in every:
        assert f"`{flag} " in PAGE or f"`{flag}`" in PAGE, flag
    for name in names:
        assert f"\n### {name}\n" in PAGE, name
