"""mkdocs hooks (mkdocs.yml): the version in every page's header, and the
repository's files outside docs/ in the site.

- `<!-- include: PATH -->` on a line of its own is replaced by the file at
  PATH (from the repository's root): README.md on the home page, CHANGELOG.md,
  benchmarks/README.md, the samples in conf/.
- A relative link to a repository file outside docs/ is pointed at the page
  that shows it (README.md at index.md, conf/X at samples.md#X, ...), so the
  Markdown files link correctly in the repository and on the site alike; a
  link to a file no page shows is left alone and fails `mkdocs build --strict`.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.M)
LINK = re.compile(r"\]\(([^()\s#]+)(#[^()\s]*)?\)")
# Repository files outside docs/ that a page of the site shows.
SHOWN = {
    "README.md": "index.md",
    "CHANGELOG.md": "changelog.md",
    "benchmarks/README.md": "performance.md",
}
LICENSE_URL = "https://www.apache.org/licenses/LICENSE-2.0"


def version() -> str:
    """mpmserver.__version__, read from its one home without importing the package."""
    text = (ROOT / "mpmserver" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def sample_anchor(path: str) -> str:
    """samples.md's anchor of a file in conf/."""
    return re.sub(r"[^a-z0-9]+", "-", posixpath.basename(path).lower())


def on_config(config):
    config.site_name = f"mpmserver {version()}"
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    page_dir = posixpath.dirname(page.file.src_uri)

    def include(m: re.Match) -> str:
        path = m.group(1)
        if not (ROOT / path).is_file():
            raise PluginError(f"{page.file.src_uri}: <!-- include: {path} -->: no such file in the repository")
        text = (ROOT / path).read_text()
        return relink(text, posixpath.dirname(path), page_dir) if path.endswith(".md") else text.rstrip("\n")

    markdown = INCLUDE.sub(include, markdown)
    return relink(markdown, posixpath.join("docs", page_dir), page_dir)


def relink(text: str, base: str, page_dir: str) -> str:
    """text's relative links, written from the repository directory base,
    made relative to the page (in docs/page_dir) that now holds them."""

    def fix(m: re.Match) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        if re.match(r"[a-z]+:", target) or target.startswith("/"):
            return m.group(0)
        path = posixpath.normpath(posixpath.join(base, target))
        if path == "LICENSE":
            return f"]({LICENSE_URL})"
        if path.startswith("docs/"):
            doc = path[len("docs/"):]
        elif path in SHOWN:
            doc = SHOWN[path]
        elif path.startswith("conf/"):
            doc, anchor = "samples.md", "#" + sample_anchor(path)
        else:
            return m.group(0)
        return f"]({posixpath.relpath(doc, page_dir or '.')}{anchor})"

    return LINK.sub(fix, text)
