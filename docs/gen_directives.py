"""Write docs/directives.md, the directive reference, from config.py's
directive table (name, flag, metavar, converter, default, help),
FLAG_ALIASES (gunicorn's and waitress's flags) and docs/directive-notes.toml
(Apache's meaning, where mpmserver differs).

    python docs/gen_directives.py           # write the page
    python docs/gen_directives.py --check   # exit 1 if the page is stale

The page is committed, so that it reads in the repository as on the site
and its changes show in review; tests/docs/test_reference.py fails when it
drifts from the table or a directive has no notes.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mpmserver import config  # noqa: E402

PAGE = HERE / "directives.md"
NOTES = HERE / "directive-notes.toml"

# What a converter accepts, by its name in config.py; a converter not
# listed shows its metavar only.
VALUE_TYPES = {
    "_int": "integer",
    "_nonneg": "integer, 0 or more",
    "_positive": "integer, 1 or more",
    "_fixed_servers": "integer, 0 or more, or `auto`",
    "_duration": "duration: seconds, or with a unit (`500ms`, `30s`, `2min`, `1h`)",
    "_positive_number": "number above 0",
    "_size": "size in bytes, or with a suffix (`64K`, `512M`, `1G`)",
    "_flag": "`On` or `Off`",
    "_string": "text",
    "_log_level": "a level: " + ", ".join(f"`{n}`" for n in config.LEVEL_NAMES),
    "_choice": "one of the metavar's words",
    "_account": "a name, or `#` and a number",
    "_status_path": "URL path starting with `/`",
    "_network": "address or network (`10.0.0.0/8`)",
    "_trusted_proxy": "address, network or `unix`",
    "_header_name": "header name",
    "_file_mode": "octal permissions (`0660`)",
    "_agent_listen": "`address:port`",
    "_wsgi_app": "`module:callable`, `module:factory(args)` or `module`",
    "_read_timeouts": "mod_reqtimeout's stages (`header=20-40,MinRate=500`)",
}
KIND_TYPES = {
    "listen": "`port`, `address:port`, `[ipv6]:port` or `unix:PATH`",
    "directory": "directory (relative to the configuration file)",
    "pathlist": "directories, separated by commas or colons",
    "include": "path, wildcards allowed (relative to the configuration file)",
    "logformat": "a format string, then its nickname",
    "customlog": "a target (`-`: standard output), then a format or nickname",
    "accesslog": "a target (`-`: standard output, `off`: none)",
}


def load_notes() -> dict[str, dict[str, str]]:
    with open(NOTES, "rb") as f:
        return tomllib.load(f)


def missing_notes(notes: dict[str, dict[str, str]]) -> list[str]:
    """Directives without both notes, and notes for directives that do not exist."""
    out = [f"{name}: no [{name}] table with apache and differs in {NOTES.name}"
           for name in config.DIRECTIVES if not {"apache", "differs"} <= set(notes.get(name, {}))]
    out += [f"{name}: in {NOTES.name} but not a directive" for name in notes if name not in config.DIRECTIVES]
    return out


def metavar(d: config.Directive) -> str:
    return " ".join(d.metavar) if isinstance(d.metavar, tuple) else d.metavar


def value_type(d: config.Directive) -> str:
    if d.kind in KIND_TYPES:
        return KIND_TYPES[d.kind]
    name = d.convert.__qualname__.split(".")[0] if d.convert else ""
    return VALUE_TYPES.get(name, f"`{metavar(d)}`")


def flags(d: config.Directive) -> str:
    if not d.flag:
        return "none (configuration file only)" if not d.alias_of else f"`--{config.DIRECTIVES[d.alias_of].flag}`"
    return f"`--{d.flag} {metavar(d)}`"


def aliases(d: config.Directive) -> str:
    return ", ".join(f"`{a}`" for a in config.FLAG_ALIASES.get(d.name, ()))


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def summary(directives: list[config.Directive]) -> list[str]:
    lines = ["| directive | flag | gunicorn / waitress flag | default |", "|---|---|---|---|"]
    for d in directives:
        flag = f"`--{d.flag}`" if d.flag else ""
        lines.append(f"| [{d.name}](#{d.name.lower()}) | {flag} | {aliases(d)} | "
                     f"{cell(f'`{config._default_text(d)}`')} |")
    return lines


def entry(d: config.Directive, note: dict[str, str]) -> list[str]:
    facts = [f"- **Syntax:** `{d.name} {metavar(d)}`", f"- **Flag:** {flags(d)}"]
    if aliases(d):
        facts.append(f"- **gunicorn / waitress flag:** {aliases(d)}")
    facts += [f"- **Value:** {value_type(d)}", f"- **Default:** `{config._default_text(d)}`"]
    text = ["", f"### {d.name}", "", d.help[0].upper() + d.help[1:] + ".", "", *facts,
            f"- **In Apache:** {note['apache']}"]
    text.append(f"- **In mpmserver:** {note['differs'] or 'as in Apache.'}")
    return text


def render() -> str:
    notes = load_notes()
    problems = missing_notes(notes)
    if problems:
        raise SystemExit("docs/gen_directives.py:\n  " + "\n  ".join(problems))
    directives = list(config.DIRECTIVES.values())
    head = [
        "<!-- Generated by docs/gen_directives.py from mpmserver/config.py and docs/directive-notes.toml;",
        "     do not edit: edit those, then run python docs/gen_directives.py -->",
        "# Directive reference",
        "",
        "Every directive, as `mpmserver --help` and the configuration file know it. A directive",
        "is set in the file (`ThreadsPerChild 8`) or by its flag (`--threads-per-child 8`),",
        "and flags win; `MPMSERVER_CMD_ARGS` in the environment is read before the command",
        "line. Defaults and clamping are Apache 2.4's worker MPM's; `mpmserver -t -f FILE`",
        "checks a file. [conf/mpmserver.conf](../conf/mpmserver.conf) is a commented sample.",
        "",
        *summary(directives),
    ]
    body = [line for d in directives for line in entry(d, notes[d.name])]
    return "\n".join(head + body) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if PAGE.read_text() != text:
            print(f"{PAGE} is stale: run python docs/gen_directives.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
