"""pytest plugin for ab.sh (-p ab_verify): makes sure every mpmserver / benchmarks
module a micro-benchmark run imported came from the tree named by $AB_TREE,
and prints which file mpmserver was loaded from."""

import os
import sys

import pytest


def _foreign(tree):
    bad = []
    for name, mod in list(sys.modules.items()):
        if name.split(".")[0] not in ("mpmserver", "benchmarks"):
            continue
        f = getattr(mod, "__file__", None)
        if f is None:       # namespace package (benchmarks/ has no __init__.py)
            paths = list(getattr(mod, "__path__", []))
            if paths and not os.path.realpath(paths[0]).startswith(tree + os.sep):
                bad.append(f"{name}: {paths}")
            continue
        if not os.path.realpath(f).startswith(tree + os.sep):
            bad.append(f"{name}: {f}")
    return bad


def pytest_report_header(config):
    import mpmserver
    return f"ab_verify: AB_TREE={os.environ.get('AB_TREE')} mpmserver from {mpmserver.__file__}"


def pytest_collection_finish(session):
    tree = os.path.realpath(os.environ["AB_TREE"])
    bad = _foreign(tree)
    if bad:
        pytest.exit("ab_verify: modules NOT from " + tree + ":\n  " + "\n  ".join(bad), returncode=3)


def pytest_sessionfinish(session, exitstatus):
    tree = os.path.realpath(os.environ["AB_TREE"])
    bad = _foreign(tree)
    if bad:
        sys.stderr.write("ab_verify: modules NOT from " + tree + ":\n  " + "\n  ".join(bad) + "\n")
        session.exitstatus = 3
