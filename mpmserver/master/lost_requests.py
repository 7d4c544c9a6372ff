"""Access-log lines for the requests a child took with it when it died.

Killed after RequestTimeout, crashed, or exited from the app: nobody else
will log what it was running. The master reads those requests from the
child's scoreboard slot before clearing it (request_timeout.requests_lost)
and logs each as Apache would a request cut short: status 500 and %X "X".
The bytes already sent are not known here, nor any header.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..logs import AccessRecord

if TYPE_CHECKING:
    from ..logs import ErrorLog
    from ..scoreboard import WorkerSnapshot

__all__ = ["log_lost_requests"]


def log_lost_requests(access_log: Any, error_log: ErrorLog, lost: Iterable[WorkerSnapshot]) -> None:
    """One access-log line per lost request; a failed write goes to the error log."""
    if access_log is None:
        return
    now = time.time()
    for w in lost:
        record = AccessRecord(remote_addr=w.client or "-", request_line=w.request, status=500,
                              start_time=w.start_time, duration=now - w.start_time, conn_status="X")
        try:
            access_log.log(record)
        except OSError as exc:
            error_log.error(f"cannot write the access log: {exc}")
