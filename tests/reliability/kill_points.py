"""Every place a run can be SIGKILLed by ``pipeline.faults``, in the order a run reaches them.

A run first plans (ingest writes its parts, every stage records its key), then
executes (stage, part) units part-major, then finalises (``_SUCCESS`` markers, the
manifest). Inside a unit the part store writes rows, errors, then the commit
marker. Sorting kill points by that order lets one chain of runs hit several of
them: each run is killed at the next point, and the resumed run gets there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.faults import POINTS
from pipeline.stage_specs import PART_STAGES

# Steps inside one unit, as StageStore.write_part and the runner reach them.
UNIT_STEPS = ("before_compute", "rename:rows", "after_rows_written", "rename:errors", "after_errors_written",
              "rename:marker", "after_marker_written")

# Fault names of the three atomic writes of a unit (storage.parts: staged rows go by their published name).
_RENAMED = {"rename:rows": "part-{part:05d}.parquet", "rename:errors": "_errors/part-{part:05d}.parquet",
            "rename:marker": "_markers/part-{part:05d}.json"}


@dataclass(frozen=True, order=True)
class KillPoint:
    order: tuple[int, ...]
    rule: str  # the RELFACTORY_FAULTS rule, without "=kill"

    @property
    def fault(self) -> str:
        return f"{self.rule}=kill"


def _unit_rule(step: str, stage: str, part: int) -> str:
    if step in _RENAMED:
        return f"before_rename:{stage}/" + _RENAMED[step].format(part=part)
    return f"{step}:{stage}:{part}"


def all_kill_points(n_parts: int, run_name: str) -> list[KillPoint]:
    points = [KillPoint((0, 0, 0, 0), "before_rename:ingest/_STAGE.json")]
    for part in range(n_parts):
        for s, step in enumerate(UNIT_STEPS[1:], start=1):  # ingest has no compute step of its own
            points.append(KillPoint((0, 1, part, s), _unit_rule(step, "ingest", part)))
    points += [KillPoint((0, 2, 0, 0), "before_rename:ingest/_STATS.json"),
               KillPoint((0, 3, 0, 0), "before_rename:ingest/_SUCCESS")]
    for i, stage in enumerate(PART_STAGES):
        points.append(KillPoint((0, 4, i, 0), f"before_rename:{stage}/_STAGE.json"))
        points.append(KillPoint((2, i, 0, 0), f"before_rename:{stage}/_SUCCESS"))
        for part in range(n_parts):
            for s, step in enumerate(UNIT_STEPS):
                points.append(KillPoint((1, part, i, s), _unit_rule(step, stage, part)))
    points += [KillPoint((3, 0, 0, 0), "before_manifest"),
               KillPoint((3, 1, 0, 0), f"before_rename:{run_name}/manifest.json")]
    assert {p.rule.split(":")[0] for p in points} == set(POINTS), "a fault point of pipeline.faults is not exercised"
    return sorted(points)


def must_cover(n_parts: int, run_name: str, rng: random.Random) -> list[KillPoint]:
    """Points the issue names: inside each stage, between a part's write and its marker, the manifest update."""
    by_rule = {p.rule: p for p in all_kill_points(n_parts, run_name)}
    rules = [f"before_compute:{stage}:{rng.randrange(n_parts)}" for stage in PART_STAGES]
    stage = rng.choice(PART_STAGES)
    part = rng.randrange(n_parts)
    rules += [f"after_errors_written:{stage}:{part}", f"before_rename:{stage}/_markers/part-{part:05d}.json",
              f"before_rename:{run_name}/manifest.json"]
    return [by_rule[r] for r in dict.fromkeys(rules)]


def kill_chains(n_parts: int, run_name: str, n_chains: int, per_chain: int, seed: int) -> list[list[KillPoint]]:
    """``n_chains`` sorted chains of distinct kill points: the required ones, then random ones."""
    rng = random.Random(seed)
    chosen = must_cover(n_parts, run_name, rng)
    pool = [p for p in all_kill_points(n_parts, run_name) if p not in chosen]
    chosen += rng.sample(pool, n_chains * per_chain - len(chosen))
    rng.shuffle(chosen)
    return [sorted(chosen[i * per_chain:(i + 1) * per_chain]) for i in range(n_chains)]
