"""Live progress of a run: one bar per stage (parts done, rate, ETA) and one structured log line per unit.

Executors and the Prefect flow report each finished (stage, part) unit here. The
bars go to the terminal only when asked (``progress=True``, the CLI); the log
line always goes to the ``relfactory`` logger as ``key=value`` text, with the same
fields as record attributes (``run``, ``stage``, ``part``, ...) for log shippers
and JSON formatters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pipeline.stage_specs import PART_STAGES

log = logging.getLogger("relfactory.progress")


class StageProgress:
    """Per-stage progress bars over the units a run will compute."""

    def __init__(self, run: str, units: Iterable[tuple[str, int]], enabled: bool = True) -> None:
        self.run = run
        totals: dict[str, int] = {}
        for stage, _ in units:
            totals[stage] = totals.get(stage, 0) + 1
        self.rows: dict[str, int] = dict.fromkeys(totals, 0)
        # Log lines printed while bars are on screen go above them instead of through them.
        self._redirect = logging_redirect_tqdm() if enabled else None
        stages = [s for s in PART_STAGES if s in totals]
        width = max((len(s) for s in stages), default=0)
        self.bars = {
            stage: tqdm(total=totals[stage], desc=f"{run} {stage:<{width}}", unit="part", position=index,
                        leave=True, disable=not enabled)
            for index, stage in enumerate(stages)
        }

    def done(self, summary: dict[str, Any]) -> None:
        """One unit finished: advance its stage's bar and log it."""
        stage = summary["stage"]
        bar = self.bars.get(stage)
        if bar is not None:
            self.rows[stage] += summary.get("rows", 0) or 0
            bar.set_postfix(rows=self.rows[stage], refresh=False)
            bar.update(1)
        log_unit(self.run, summary)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None

    def __enter__(self) -> "StageProgress":
        if self._redirect is not None:
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_unit(run: str, summary: dict[str, Any]) -> None:
    """``run=<name> stage=<stage> part=<n> ...``: one line per finished unit, fields also as attributes."""
    fields: dict[str, Any] = {"run": run, "stage": summary.get("stage"), "part": summary.get("part")}
    if summary.get("skipped"):
        fields["cached"] = True
    else:
        for key in ("rows", "errors", "attempts", "seconds"):
            if key in summary:
                fields[key] = summary[key]
    log.info(" ".join(f"{k}={v}" for k, v in fields.items()), extra={"relfactory": fields, **fields})
