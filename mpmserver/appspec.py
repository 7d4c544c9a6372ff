"""The app spec, as gunicorn takes it (parses, never imports), and where
the app lives (enter_app_home: Chdir and PythonPath, the one side effect).

    module                    module:application, else module:app
    module:name.attr          an attribute, dotted
    module:create_app()       a factory, called once per process that loads it
    module:create_app("prod", debug=False)
                              with literal arguments only (ast.literal_eval:
                              strings, numbers, tuples, lists, dicts, None,
                              True/False), never eval()
"""

from __future__ import annotations

import ast
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AppSpec", "parse_app_spec", "DEFAULT_NAMES", "enter_app_home"]

# Tried in this order when the spec names no attribute (gunicorn: application, then app).
DEFAULT_NAMES = ("application", "app")
_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
EXAMPLES = "e.g. myproject.wsgi:application, myapp:app or myapp:create_app()"


@dataclass(frozen=True)
class AppSpec:
    module: str
    # The attribute path; empty: DEFAULT_NAMES.
    attrs: tuple[str, ...] = ()
    # Set for a factory: positional and keyword literal arguments.
    call: tuple[tuple[Any, ...], dict[str, Any]] | None = field(default=None, compare=False)


def parse_app_spec(spec: str) -> AppSpec:
    """Parse ``spec``; ValueError says what is wrong with it, in one line."""
    module, sep, target = spec.partition(":")
    if not _MODULE_RE.match(module):
        raise ValueError(f"{spec!r}: {module!r} is not a module name; use module:callable, {EXAMPLES}")
    if not sep:
        return AppSpec(module)
    try:
        node = ast.parse(target.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"{spec!r}: {target!r} is not a name or a call; {EXAMPLES}") from None
    call = None
    if isinstance(node, ast.Call):
        call = (_literal_args(spec, node), _literal_kwargs(spec, node))
        node = node.func
    return AppSpec(module, _attr_path(spec, node), call)


def _attr_path(spec: str, node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ValueError(f"{spec!r}: after ':' give a name, a dotted name or a call of one; {EXAMPLES}")
    parts.append(node.id)
    return tuple(reversed(parts))


def _literal(spec: str, node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{spec!r}: factory arguments must be literals (strings, numbers, "
                         f"True, False, None, lists, dicts), not {ast.unparse(node)!r}") from None


def _literal_args(spec: str, call: ast.Call) -> tuple[Any, ...]:
    if any(isinstance(a, ast.Starred) for a in call.args):
        raise ValueError(f"{spec!r}: factory arguments cannot use *")
    return tuple(_literal(spec, a) for a in call.args)


def _literal_kwargs(spec: str, call: ast.Call) -> dict[str, Any]:
    if any(k.arg is None for k in call.keywords):
        raise ValueError(f"{spec!r}: factory arguments cannot use **")
    return {k.arg: _literal(spec, k.value) for k in call.keywords}


def enter_app_home(chdir: str | None, python_path: list[str] | tuple[str, ...] = ()) -> None:
    """Chdir and PythonPath (gunicorn's --chdir, --pythonpath): enter the
    app's directory and put the PythonPath entries first on sys.path, in
    their order. Idempotent, so the master (before it imports the app, and
    on a restart) and every child may each call it. The config has already
    made both absolute and checked that they are directories."""
    if chdir and os.getcwd() != chdir:
        os.chdir(chdir)
    for entry in reversed(python_path):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
