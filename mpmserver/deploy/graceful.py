"""A graceful restart's outcome, for ``mpmserver -k graceful`` (pure).

A graceful restart succeeds when a child of the new generation has imported
the app and started; it is abandoned when the new children cannot start
(the old generation serves on), or skipped when the new configuration does
not load. The master writes each outcome to a small file beside its PidFile
(``PidFile.restart``, written anew as the PidFile is, removed with it):
one line, ``<restart number> <served|failed> <generation serving> <reason>``.
``-k graceful`` reads the number there, sends USR1, and waits, as
``-k upgrade`` does, until a line with a larger number says how it went.

This module formats, reads and judges that line; the master writes it
(master.py), the command line waits (cli.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RECORD_SUFFIX", "RESTART_PATIENCE", "Record", "format_record", "outcome", "parse_record",
           "record_path"]

RECORD_SUFFIX = ".restart"
# How long -k graceful waits for the outcome: the new children's import.
RESTART_PATIENCE = 120.0


@dataclass(frozen=True)
class Record:
    number: int        # graceful restarts the master has been asked for, this one included
    served: bool       # a child of the new generation started
    generation: int    # the generation serving now
    reason: str = ""   # why it failed (one line)


def record_path(pid_file: str) -> str:
    return pid_file + RECORD_SUFFIX


def format_record(record: Record) -> str:
    reason = " ".join(record.reason.split())  # one line, whatever the exception said
    state = "served" if record.served else "failed"
    return f"{record.number} {state} {record.generation} {reason}".rstrip() + "\n"


def parse_record(text: str | None) -> Record | None:
    """The record in ``text``; None if there is none or it is not one."""
    if not text:
        return None
    fields = text.strip().split(" ", 3)
    if len(fields) < 3 or fields[1] not in ("served", "failed"):
        return None
    try:
        return Record(int(fields[0]), fields[1] == "served", int(fields[2]), fields[3] if len(fields) > 3 else "")
    except ValueError:
        return None


def outcome(before: int, now: Record | None, master_alive: bool) -> tuple[str, str]:
    """What ``-k graceful`` sees, as (state, message): state is "served",
    "failed" or "waiting". ``before``: the restart number in the record
    when USR1 was sent (0: no record)."""
    if now is not None and now.number > before:
        if now.served:
            return "served", f"graceful restart done: generation {now.generation} serves"
        return "failed", (f"graceful restart failed, still serving generation {now.generation}: "
                          f"{now.reason or 'see the error log'}")
    if not master_alive:
        return "failed", "the master exited before the restart was decided"
    return "waiting", "the new children have not started yet"
