"""Fault injection for the reliability suite (tests/reliability/).

Set ``RELFACTORY_FAULTS`` to a ';'-separated list of ``point[:stage[:part]]=action``
rules, e.g. ``after_rows_written:tag:1=kill`` or ``before_compute:parse=raise``.
Actions: ``kill`` (SIGKILL this process, as a crash or OOM-kill would), ``raise``
(a RuntimeError inside the stage), ``exit`` (os._exit(1), a worker dying).
Points are named where the runner and the part store hand over state. With the
variable unset (always, outside tests) every call is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "RELFACTORY_FAULTS"
POINTS = ("before_compute", "after_rows_written", "after_errors_written", "after_marker_written",
          "before_manifest")


class InjectedFault(RuntimeError):
    pass


def _rules() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    rules = {}
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        where, _, action = item.partition("=")
        rules[where] = action
    return rules


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
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(1)
    elif action == "raise":
        raise InjectedFault(f"injected fault at {point} ({stage} part {part})")
