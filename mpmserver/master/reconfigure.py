"""A restart's new configuration: read it, and reopen the logs it names.

A bad configuration or a log file that cannot be opened never takes a
running server down: it is logged and what runs is kept (Apache does the
same on a graceful restart).
"""

from __future__ import annotations

from typing import Any

from .. import config as configmod
from ..logs import ErrorLog, open_access_log

__all__ = ["reload_config", "reopen_logs"]


def reload_config(config_path: str | None, overrides: list[tuple[str, list[str]]], cfg: Any,
                  graceful: bool, error_log: ErrorLog) -> Any:
    """The new configuration, with its warnings logged; None to skip the restart."""
    try:
        new_cfg, warnings = configmod.load(config_path, overrides)
    except Exception as exc:  # noqa: BLE001 - a bad config must not take the server down
        error_log.error(f"configuration error on restart, keeping the running configuration: {exc}")
        # HUP has already been promised a restart: children are restarted with the old config.
        return None if graceful else cfg
    for w in list(warnings) + configmod.reconcile_restart(cfg, new_cfg):
        error_log.warn(w)
    return new_cfg


def reopen_logs(error_log: ErrorLog, access_log: Any, old_cfg: Any, new_cfg: Any) -> Any:
    """Reopen the error log, open the new configuration's CustomLog files;
    the access log to use from now on. A file that cannot be opened, or that
    safefiles refuses (a link not root's), is logged and the open one kept,
    as for listeners."""
    try:
        error_log.reopen()
    except OSError as exc:
        error_log.error(f"restart: {exc}; keeping the open error log")
    try:
        new_access_log = open_access_log(new_cfg)
    except (OSError, ValueError) as exc:
        error_log.error(f"restart: {exc}; keeping the open access logs")
        new_cfg.custom_logs = old_cfg.custom_logs
        return access_log
    if access_log is not None:
        access_log.close()
    return new_access_log
