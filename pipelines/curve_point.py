"""One point of a data-efficiency curve: the stages of one N (prepare to evaluate), run in
order, each as its own process, under the slot's folder. It is DVC's stage `curve@<slot>`:

    python -m midg.pipelines.stages curve --config data/config/curve-1.json --out data/curve/1

The first N of a curve runs in dvc.yaml's own stages (data/datasets/real, data/runs/...);
each further N is one `curve@<slot>` stage, so a one-N profile pays one skipped stage per
slot (about a second each) and nothing else. Inside, data/curve/<slot>/ has data/'s layout:
config/ (the stage configs of this N, from curve-<slot>.json), datasets/real (the N-image
subset: the same seeded shuffle of the same import as every other N, its first N, so the
subsets nest), library, generator, synth/<method>, datasets/<method>, runs/<cell>,
metrics/<cell>.json, and point.json (slot and N).

The folder is a persist output: after an interruption the generator and the detector runs
resume (their own input records, as in data/); the data stages are redone (same bytes).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from midg.datasets.atomic import atomic_write_json
from midg.datasets.errors import MidgError

from .calls import point_calls
from .markers import is_skipped
from .plan import METHODS, Cell
from .stage_process import die_with_parent

POINT = "point.json"  # in the slot's folder: which N it holds


def point_plan(configs: dict[str, dict]) -> tuple[list[str], list[Cell]]:
    """The methods and detector cells a point's stage configs make active."""
    methods = [m for m in METHODS if configs.get(f"generate-{m}.json", {}).get("active")]
    cells = [Cell(c["detector"], c["condition"], c["seed"]) for rel, c in configs.items()
             if rel.startswith("cells/") and c.get("active")]
    return methods, cells


def run_point(cfg: dict[str, Any], out: Path) -> None:
    """The stages of the N that an active curve-<slot>.json (`cfg`) names, under `out`."""
    if is_skipped(out):  # the marker of an earlier one-N run
        shutil.rmtree(out)
    slot, n, configs = cfg["slot"], cfg["n"], cfg["configs"]
    conf = out / "config"
    for rel, content in configs.items():
        atomic_write_json(conf / rel, content)
    stale = {p.relative_to(conf).as_posix() for p in conf.rglob("*.json")} - set(configs)
    for rel in stale:  # a cell dropped from the plan must not leave an old config behind
        (conf / rel).unlink()
    methods, cells = point_plan(configs)
    atomic_write_json(out / POINT, {"slot": slot, "n": n, "profile": cfg["profile"], "cells": [c.key for c in cells]})
    for call in point_calls(methods, cells, out.as_posix()):
        print(f"curve@{slot} (N = {n}): {call.name}", flush=True)
        sys.stderr.flush()
        # its own process, as every stage (ultralytics changes the process it runs in); it
        # dies with this one, so a cancelled curve stage leaves nothing writing
        rc = subprocess.run(call.argv(), preexec_fn=die_with_parent).returncode
        if rc != 0:
            raise MidgError(f"curve@{slot} (N = {n}): its stage {call.name} failed (exit {rc}): "
                            f"{call.shell()}; its output is above")
    print(f"curve@{slot}: N = {n}, {len(cells)} detector runs -> {out}")
