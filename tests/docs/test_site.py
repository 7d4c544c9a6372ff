"""The documentation site builds with `mkdocs build --strict` (issue 26):
every page in the navigation, every link and anchor found, every included
repository file present; the version shown is mpmserver.__version__; every
sample in conf/ is on the samples page. Built into a temporary directory,
never into the source tree. Needs the docs extra (mkdocs, mkdocs-material):
skipped without it, a failure under MPMSERVER_REQUIRE_EXTERNAL=1 (CI)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

import mpmserver
from tests.support.server import ROOT

HAS_MKDOCS = all(importlib.util.find_spec(m) for m in ("mkdocs", "material"))


@pytest.mark.external
@pytest.mark.skipif(not HAS_MKDOCS, reason="mkdocs and mkdocs-material are not installed "
                                           "(pip install -e '.[docs]')")
def test_the_site_builds_strictly_and_shows_the_version(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    home = (site / "index.html").read_text()
    assert f"mpmserver {mpmserver.__version__}" in home
    assert "A pure-Python HTTP/1.1 server for WSGI applications" in home  # the README is the home page
    reference = (site / "directives" / "index.html").read_text()
    assert 'id="threadsperchild"' in reference
    assert not (ROOT / "site").exists()


def test_every_sample_is_on_the_samples_page():
    page = (ROOT / "docs" / "samples.md").read_text()
    included = set(re.findall(r"^<!-- include: (\S+) -->$", page, re.M))
    samples = {f"conf/{p.name}" for p in (ROOT / "conf").iterdir() if p.is_file()}
    assert samples - included == set(), "add these to docs/samples.md"
    assert ".dockerignore" in included


def test_the_version_has_one_home():
    # pyproject reads it from mpmserver/__init__.py; the CLI and the site show it.
    assert 'path = "mpmserver/__init__.py"' in (ROOT / "pyproject.toml").read_text()
    out = subprocess.run([sys.executable, "-m", "mpmserver", "--version"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.strip() == f"mpmserver/{mpmserver.__version__}"


def test_the_changelog_keeps_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions and versions[0] == "Unreleased"
    for heading in re.findall(r"^### (.+)$", text, re.M):
        assert heading in ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"), heading


def test_the_yaml_examples_parse():
    yaml = pytest.importorskip("yaml")
    found = 0
    for page in sorted((ROOT / "docs").glob("*.md")):
        for block in re.findall(r"^```yaml\n(.*?)^```", page.read_text(), re.S | re.M):
            if "<!-- include:" not in block:
                assert isinstance(yaml.safe_load(block), dict), page.name
                found += 1
    assert found >= 1  # the Kubernetes pod spec in deployment.md
