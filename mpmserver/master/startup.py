"""What the master does once, as root, before its first fork: plan the
privilege drop, create and stamp the scoreboard, warn about files the User
could tamper with, and say why a start failed.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from .. import safefiles
from ..deploy import unixd
from ..logs import ErrorLog
from ..scoreboard import Scoreboard

__all__ = ["create_scoreboard", "plan_privilege_drop", "report_setup_failure", "share_heap",
           "stamp_scoreboard", "warn_about_file_directories"]


def plan_privilege_drop(cfg: Any, error_log: ErrorLog) -> Any:
    """The User/Group the children become (unixd.DropPlan), None to keep ours."""
    plan = unixd.plan_drop(cfg.user, cfg.group, os.geteuid())
    if plan is not None and plan.warning:
        error_log.warn(plan.warning)
    return plan


def share_heap() -> None:
    """Before the first fork: collect, then freeze every object the master
    holds (its imports, and the app's with PreloadApp) into the collector's
    permanent generation (gc.freeze, as Instagram does before forking).

    A child's full collections walk every tracked object and write to its
    header; on the objects a child inherited, that write copies the page
    (copy-on-write), so within a few thousand requests each child held a
    private copy of most of the imported heap. Frozen objects are never
    walked: their pages stay shared until something really writes to them
    (a reference count does, for the objects a request touches). Done once:
    the master imports nothing afterwards (a graceful restart re-imports in
    the children, and a preloaded app is never re-imported), and freezing
    again would keep any cyclic garbage the master made meanwhile for ever.
    Children never unfreeze (gc.unfreeze would put the inherited objects back
    in the oldest generation, and the next full collection would unshare
    them); the frozen objects are ones the master keeps alive anyway."""
    gc.collect()
    gc.freeze()


def create_scoreboard(cfg: Any, drop_plan: Any, generation: int) -> Scoreboard:
    # With a User, the file is 0640 and group Group: `mpmserver status`
    # run by the User, or by a member of Group, can read it; nobody else.
    group = drop_plan.gid if drop_plan is not None else None
    scoreboard = Scoreboard.create(cfg.server_limit, cfg.thread_limit, cfg.scoreboard_file, group=group)
    stamp_scoreboard(scoreboard, generation)
    return scoreboard


def stamp_scoreboard(scoreboard: Scoreboard, generation: int) -> None:
    """The master's pid, the generation and the restart time, as status pages show them."""
    scoreboard.master_pid = os.getpid()
    scoreboard.generation = generation
    scoreboard.restart_time = time.time()


def warn_about_file_directories(cfg: Any, error_log: ErrorLog, access_log: Any, plan: Any) -> None:
    """As root: warn about each PidFile or log file whose directory the User can write."""
    if plan is None:
        return
    logs = [] if access_log is None else getattr(access_log, "logs", [access_log])
    files = [("PidFile", cfg.pid_file), ("ErrorLog", error_log.path)]
    files += [("CustomLog", log.path) for log in logs]
    for w in safefiles.check_directories([(what, path) for what, path in files if path],
                                         plan.user_name, plan.uid, unixd.groups_of(plan)):
        error_log.warn(w)


def report_setup_failure(cfg: Any, error_log: ErrorLog, app_spec: str, exc: Exception) -> None:
    """An app that would not import gets its traceback; anything else one emerg line."""
    if isinstance(exc, (ImportError, SyntaxError)) or cfg.preload_app and not isinstance(exc, OSError):
        error_log.exception(f"failed to load the WSGI app {app_spec!r}", exc)
    else:
        error_log.log("emerg", str(exc))
