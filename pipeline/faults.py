"""Fault injection for the reliability suite (tests/reliability/).

Set ``RELFACTORY_FAULTS`` to a ';'-separated list of ``point[:stage[:part]]=action``
rules, e.g. ``after_rows_written:tag:1=kill`` or ``before_compute:parse=raise``.
Actions: ``kill`` (SIGKILL this process, as a crash or OOM-kill would), ``raise``
(a RuntimeError inside the stage), ``exit`` (os._exit(1), a worker dying),
``enospc`` / ``eacces`` (the OSError a full disk / a read-only output raises),
``sleep-<seconds>`` (a slow step: holds the run, and its lock, in place).
An action suffixed ``/once`` (``exit/once``) fires for the first process that
reaches it only: a marker file in the directory ``RELFACTORY_FAULTS_STATE``
records that it fired, so a retried task or a resumed run gets past it.
Points are named where the runner and the part store hand over state;
``before_rename`` is inside every atomic write, after the temp file is written and
before it replaces the target, with ``<parent dir>/<file name>`` as its stage.
With the variable unset (always, outside tests) every call is a dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

ENV = "RELFACTORY_FAULTS"
STATE_ENV = "RELFACTORY_FAULTS_STATE"
POINTS = ("before_compute", "after_rows_written", "after_errors_written", "after_marker_written",
          "before_manifest", "before_rename")


class InjectedFault(RuntimeError):
    pass


def _rules() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    rules = {}
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        where, _, action = item.partition("=")
        rules[where] = action
    return rules


def _first_time(where: str) -> bool:
    """True for the first process to reach a ``/once`` rule (O_EXCL makes it race-free)."""
    state = os.environ.get(STATE_ENV)
    if not state:
        raise RuntimeError(f"a '/once' fault needs {STATE_ENV} set to a directory for its markers")
    marker = Path(state) / ("fired-" + "".join(c if c.isalnum() else "_" for c in where))
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def maybe_fault(point: str, stage: str = "", part: int | None = None) -> None:
    if ENV not in os.environ:
        return
    rules = _rules()
    for where in (f"{point}:{stage}:{part}", f"{point}:{stage}", point):
        action = rules.get(where)
        if action:
            break
    else:
        return
    action, _, modifier = action.partition("/")
    if modifier == "once" and not _first_time(where):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(1)
    elif action == "raise":
        raise InjectedFault(f"injected fault at {point} ({stage} part {part})")
    elif action == "enospc":
        raise OSError(errno.ENOSPC, "No space left on device (injected)", stage or point)
    elif action == "eacces":
        raise PermissionError(errno.EACCES, "Permission denied (injected)", stage or point)
    elif action.startswith("sleep-"):
        time.sleep(float(action.removeprefix("sleep-")))
    else:  # a typo in a test's rule must not pass silently as "no fault"
        raise ValueError(f"unknown fault action {action!r} in {ENV}={os.environ[ENV]!r}")
