"""The stage commands of a plan, with dvc.yaml's paths: what `midg run --no-dvc` runs in
order, what Ray runs as tasks without DVC, and what one point of a curve runs inside.

    stage_calls(plan)                                  # config, prepare, ..., curve@1, report
    point_calls(plan.at_n(10), "data/curve/1")         # prepare ... evaluate of one N, under one folder

A test checks that every call is the command dvc.yaml gives its stage.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

from .plan import CURVE_DIR, Cell, Plan


@dataclass(frozen=True)
class StageCall:
    name: str  # as DVC names it: detect@yolov8n-real-0
    args: tuple[str, ...]  # after `python -m midg.pipelines.stages`

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "midg.pipelines.stages", *self.args]

    def shell(self) -> str:
        """The command as dvc.yaml spells it."""
        return "python -m midg.pipelines.stages " + " ".join(shlex.quote(a) for a in self.args)


def point_calls(methods: list[str], cells: list[Cell], root: str = "data") -> list[StageCall]:
    """prepare to evaluate at one N, in order, every path under `root` (with "data", exactly
    dvc.yaml's stages; a curve point's folder: the same layout inside it)."""
    real = f"{root}/datasets/real"
    conf = f"{root}/config"
    calls = [StageCall("prepare", ("prepare", "--config", f"{conf}/data.json", "--out", real))]
    checkpoint = {"copypaste": f"{root}/library", "midg": f"{root}/generator"}
    if "copypaste" in methods:
        calls.append(StageCall("library", ("library", "--config", f"{conf}/library.json",
                                           "--data", real, "--out", checkpoint["copypaste"])))
    if "midg" in methods:
        calls.append(StageCall("generator_train", ("generator_train", "--config", f"{conf}/generator.json",
                                                   "--data", real, "--out", checkpoint["midg"])))
    for m in methods:
        calls.append(StageCall(f"generate@{m}", ("generate", "--config", f"{conf}/generate-{m}.json",
                                                 "--data", real, "--checkpoint", checkpoint[m],
                                                 "--out", f"{root}/synth/{m}")))
    for m in methods:
        calls.append(StageCall(f"merge@{m}", ("merge", "--config", f"{conf}/merge-{m}.json", "--real", real,
                                              "--synth", f"{root}/synth/{m}", "--out", f"{root}/datasets/{m}")))
    for cell in cells:
        calls.append(StageCall(f"detect@{cell.key}", ("detect", "--config", f"{conf}/cells/{cell.key}.json",
                                                      "--data", f"{root}/datasets/{cell.condition}", "--gt", real,
                                                      "--out", f"{root}/runs/{cell.key}")))
    for cell in cells:
        calls.append(StageCall(f"evaluate@{cell.key}", ("evaluate", "--config", f"{conf}/cells/{cell.key}.json",
                                                        "--run", f"{root}/runs/{cell.key}", "--gt", real,
                                                        "--out", f"{root}/metrics/{cell.key}.json")))
    return calls


def stage_calls(plan: Plan, params: str = "params.yaml") -> list[StageCall]:
    """The stages the plan needs, in order, with dvc.yaml's paths (tests check they agree)."""
    calls = [StageCall("config", ("config", "--params", params, "--out", "data/config"))]
    calls += point_calls(plan.methods(), plan.cells())
    for slot, _ in plan.points()[1:]:
        calls.append(StageCall(f"curve@{slot}", ("curve", "--config", f"data/config/curve-{slot}.json",
                                                 "--out", f"{CURVE_DIR}/{slot}")))
    calls.append(StageCall("report", ("report", "--config", "data/config/report.json", "--metrics", "data/metrics",
                                      "--runs", "data/runs", "--real", "data/datasets/real", "--synth", "data/synth",
                                      "--generator", "data/generator", "--curve", CURVE_DIR, "--out", "reports")))
    return calls
