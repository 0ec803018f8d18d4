"""The plan of one job: which profile, which data, which cells of the detector grid, at
which N (annotated training images; several N make a data-efficiency curve).

    plan = resolve_plan(load_params("params.yaml"))        # the profile named by `profile:`
    plan.cells()                                           # [Cell("yolov8n", "real", 0), ...]
    plan.n_values()                                        # (40,), or (10, 40) for a curve
    write_stage_configs(plan, Path("data/config"))         # what the `config` stage does

DVC's `matrix` cannot follow a profile chosen at run time, so dvc.yaml spans GRID, every
cell any profile may use, and the `config` stage (the one stage that reads params.yaml)
writes one small JSON per stage and per cell: the exact settings it runs with, or
`{"active": false}` for a cell the profile leaves out. Every other stage depends on its
own JSON only, so DVC reruns exactly what a params change touches: one more seed reruns
that seed's cells and the report, nothing else; a change to another profile reruns nothing.

A curve (`data.subset_n: [10, 40]`, `midg run --n-images 10 40`): the first N runs in the
stages above, with their folders; each further N fills one of CURVE_SLOTS, the DVC stage
`curve@<slot>`, which runs the same stages for that N (its nested subset, library,
generator, generation, merges and cells) under data/curve/<slot>/ (pipelines/curve_point.py).
Its config, `curve-<slot>.json`, holds every stage config of that N; a one-N profile
leaves every slot `{"active": false}` (one skipped stage each, about a second).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from midg.datasets.atomic import atomic_write_json
from midg.datasets.errors import ConfigError
from midg.datasets.params import as_dict, fill

# Every cell any profile may use: dvc.yaml's `vars: grid` holds the same lists (a test checks).
GRID: dict[str, tuple] = {
    "detectors": ("yolov8n", "yolov5nu", "faster_rcnn", "faster_rcnn_r18"),
    "conditions": ("real", "copypaste", "midg"),
    "seeds": (0, 1, 2),
}
METHODS = ("copypaste", "midg")  # the synthetic conditions: one generate + merge stage each
SECTIONS = ("data", "pipeline", "generator", "generate", "detector")  # of each profile
# Sections other tools read and the pipeline leaves alone (benchmarks/deeppcb.py: `benchmark`).
OTHER_SECTIONS = ("benchmark",)
# The curve's N past the first, one DVC stage each: dvc.yaml's `vars: curve` (a test checks).
CURVE_SLOTS: tuple[int, ...] = (1, 2, 3)
CURVE_DIR = "data/curve"  # slot k's folders: data/curve/<k>/{config,datasets,library,generator,synth,runs,metrics}


@dataclass(frozen=True)
class DataConfig:
    source: str = "demo"  # demo | deeppcb | a path: canonical dataset folder, ultralytics data.yaml or COCO .json
    n_images: int = 200  # demo only: boards drawn (split into train/val/test)
    size: int = 256  # demo only: board side in pixels
    zoom: float = 1.0  # demo only: design magnification (2: traces and defects twice as big)
    # annotated defect images kept for training (the defect-scarce subset); 0 keeps all; a list
    # of N (each >= 1) makes a data-efficiency curve: the first N in data/, the others in data/curve/
    subset_n: int | tuple[int, ...] = 100
    seed: int = 0  # demo boards, train/val split of imports, and the subset draw
    deeppcb_root: str = "../shared/datasets/DeepPCB"  # deeppcb only: the copy to read, relative to the project
    normals: str | None = None  # a folder of defect-free images, for a source without its own normals
    coco_images: str | None = None  # COCO source only: its image folder (default: the json's folder)

    def __post_init__(self) -> None:
        if isinstance(self.subset_n, int):
            if self.subset_n < 0:
                raise ConfigError(f"data.subset_n must be 0 (keep all) or more, got {self.subset_n}")
            return
        values = list(self.subset_n)
        if not values or any(n < 1 for n in values) or len(set(values)) != len(values):
            raise ConfigError(f"data.subset_n (--n-images): a curve's N must be distinct integers of at least 1, "
                              f"got {values}")
        if len(values) > 1 + len(CURVE_SLOTS):
            raise ConfigError(f"data.subset_n (--n-images): {len(values)} N values, but a curve holds at most "
                              f"{1 + len(CURVE_SLOTS)} (the first N and one per slot of dvc.yaml's `vars: curve` "
                              f"{list(CURVE_SLOTS)}); add slots there and to CURVE_SLOTS in pipelines/plan.py")


@dataclass(frozen=True)
class PipelineConfig:
    detectors: tuple[str, ...] = ("yolov8n",)  # detectors trained per condition and seed
    conditions: tuple[str, ...] = ("real", "copypaste", "midg")  # training sets compared
    seeds: tuple[int, ...] = (0,)  # detector seeds per condition (mean and spread in the report)
    # S, the number of synthetic images, and the sampler's seed are the `generate` section's
    # n_images and seed: one section for both methods, so both get the same rectangles.

    def __post_init__(self) -> None:
        for key in ("detectors", "conditions", "seeds"):
            values = getattr(self, key)
            if not values:
                raise ConfigError(f"pipeline.{key} must not be empty")
            if len(set(values)) != len(values):
                raise ConfigError(f"pipeline.{key} repeats a value: {list(values)}")
            outside = [v for v in values if v not in GRID[key]]
            if outside:
                raise ConfigError(
                    f"pipeline.{key}: {outside} not in dvc.yaml's grid {list(GRID[key])}; "
                    f"add them to `vars: grid` in dvc.yaml and to GRID in pipelines/plan.py")
        if "real" not in self.conditions:
            raise ConfigError("pipeline.conditions must include 'real': the gains are measured against it")


@dataclass(frozen=True)
class RunOverrides:
    """params.yaml's `run:` line, written by `midg run` flags; None keeps the profile's value."""

    detectors: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    data: str | None = None
    normals: str | None = None
    subset_n: tuple[int, ...] | None = None  # `--n-images 10 40`: the N (several: a curve)


RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunOverrides))  # the `run:` line, in this order


@dataclass(frozen=True, order=True)
class Cell:
    detector: str
    condition: str
    seed: int

    @property
    def key(self) -> str:
        """DVC's `${key}` of the matrix item: the stage is `detect@<key>`, the run `data/runs/<key>`."""
        return f"{self.detector}-{self.condition}-{self.seed}"


@dataclass(frozen=True)
class Plan:
    profile: str
    data: DataConfig
    pipeline: PipelineConfig
    sections: dict[str, dict[str, Any]]  # generator / generate / detector, as params.yaml gives them

    def cells(self) -> list[Cell]:
        p = self.pipeline
        return [Cell(d, c, s) for d in p.detectors for c in p.conditions for s in p.seeds]

    def methods(self) -> list[str]:
        return [m for m in METHODS if m in self.pipeline.conditions]

    def n_values(self) -> tuple[int, ...]:
        """The N the job trains at, in the order given: the first in data/, the rest in curve slots."""
        n = self.data.subset_n
        return (n,) if isinstance(n, int) else tuple(n)

    def points(self) -> list[tuple[int, int]]:
        """(slot, N) of every N: slot 0 is the stages of dvc.yaml, slot k >= 1 is `curve@k`."""
        return list(zip((0, *CURVE_SLOTS), self.n_values()))

    def at_n(self, n: int) -> "Plan":
        """This plan at one N (what each point of a curve runs)."""
        return dataclasses.replace(self, data=dataclasses.replace(self.data, subset_n=n))


def grid_cells() -> list[Cell]:
    return [Cell(d, c, s) for d in GRID["detectors"] for c in GRID["conditions"] for s in GRID["seeds"]]


def resolve_plan(params: dict[str, Any], profile: str | None = None) -> Plan:
    """The chosen profile (default: params' `profile:`) with params' `run:` overrides applied."""
    profiles = params.get("profiles", {})
    profile = profile or params.get("profile")
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(profiles)}")
    prof = profiles[profile] or {}
    if not isinstance(prof, dict):
        raise ConfigError(f"params profiles.{profile} must be a mapping of sections")
    unknown = sorted(set(prof) - set(SECTIONS) - set(OTHER_SECTIONS))
    if unknown:
        raise ConfigError(f"params profiles.{profile}: unknown section(s) {unknown}; "
                          f"valid: {list(SECTIONS + OTHER_SECTIONS)}")
    sections = {}
    for name in SECTIONS:
        sec = prof.get(name) or {}
        if not isinstance(sec, dict):
            raise ConfigError(f"params profiles.{profile}.{name} must be a mapping")
        sections[name] = dict(sec)
    run = fill(RunOverrides, params.get("run") or {}, "params run")
    data_values = sections.pop("data")
    if run.data is not None:
        data_values["source"] = run.data
    if run.normals is not None:
        data_values["normals"] = run.normals
    if run.subset_n is not None:
        data_values["subset_n"] = list(run.subset_n)
    pipe_values = sections.pop("pipeline")
    if run.detectors is not None:
        pipe_values["detectors"] = list(run.detectors)
    if run.seeds is not None:
        pipe_values["seeds"] = list(run.seeds)
    data = fill(DataConfig, data_values, f"params profiles.{profile}.data")
    pipeline = fill(PipelineConfig, pipe_values, f"params profiles.{profile}.pipeline")
    return Plan(profile, data, pipeline, sections)


# ---------------------------------------------------------------- the config stage's files


def source_fingerprint(source: str | Path) -> str:
    """sha256 over every file of a dataset source (relative path, size, content).

    DVC cannot list a dependency chosen by a param, so the `config` stage records this in
    data.json instead: a changed user dataset changes data.json, which reruns `prepare`.
    """
    src = Path(source)
    if not src.exists():
        raise ConfigError(f"data source {str(source)!r} does not exist (a folder, a data.yaml or a COCO .json)")
    root = src.parent if src.is_file() else src
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file() and not p.name.endswith(".cache"))
    if src.is_file() and src.suffix.lower() in (".yaml", ".yml"):
        # an ultralytics data.yaml names folders beside it: hash the whole folder it lives in
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".cache"))
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\0".encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _data_section(plan: Plan) -> dict[str, Any]:
    """data.json's content: the keys the source uses, and a path source's fingerprint."""
    d = as_dict(plan.data)
    if d["source"] == "demo":
        return {k: d[k] for k in ("source", "n_images", "size", "zoom", "subset_n", "seed")}
    for k in ("n_images", "size", "zoom"):
        d.pop(k)
    if d["source"] != "deeppcb":
        d.pop("deeppcb_root")
    src = d["deeppcb_root"] if d["source"] == "deeppcb" else d["source"]
    d["fingerprint"] = source_fingerprint(src)
    if d.get("normals"):
        d["normals_fingerprint"] = source_fingerprint(d["normals"])
    return d


def point_configs(plan: Plan, data: dict[str, Any], grid: bool) -> dict[str, dict[str, Any]]:
    """The configs of the stages that run at one N (prepare to evaluate): with `grid`, one per
    cell of GRID (dvc.yaml's matrix), inactive ones `{"active": false}`; else the plan's cells."""
    files: dict[str, dict[str, Any]] = {"data.json": {"data": data}}  # no profile name: paper and bench-cpu share one import
    methods = plan.methods()
    files["generator.json"] = {"active": "midg" in methods, "profile": plan.profile,
                               "generator": plan.sections["generator"]}
    if not files["generator.json"]["active"]:
        files["generator.json"] = {"active": False}
    for m in METHODS:
        active = m in methods
        files[f"generate-{m}.json"] = {
            "active": True, "profile": plan.profile, "method": m, "generate": plan.sections["generate"],
        } if active else {"active": False}
        files[f"merge-{m}.json"] = {"active": True, "method": m} if active else {"active": False}
    # copy-paste's defect library (and the sampler statistics both methods share)
    files["library.json"] = {"active": "copypaste" in methods}
    active_cells = set(plan.cells())
    for cell in sorted(set(grid_cells()) | active_cells if grid else active_cells):
        files[f"cells/{cell.key}.json"] = {
            "active": True, "profile": plan.profile, **dataclasses.asdict(cell), "key": cell.key,
            "detector_params": plan.sections["detector"],
        } if cell in active_cells else {"active": False}
    return files


def stage_configs(plan: Plan) -> dict[str, dict[str, Any]]:
    """File name (relative to the config folder) → content, for every stage, grid cell and curve slot."""
    points = plan.points()
    first = plan.at_n(points[0][1])
    d = _data_section(first)
    files = point_configs(first, d, grid=True)
    slots = dict(points[1:])
    for slot in CURVE_SLOTS:
        files[f"curve-{slot}.json"] = {
            "active": True, "profile": plan.profile, "slot": slot, "n": slots[slot],
            "configs": point_configs(plan.at_n(slots[slot]), {**d, "subset_n": slots[slot]}, grid=False),
        } if slot in slots else {"active": False}
    files["report.json"] = {
        "profile": plan.profile,
        "data": d,
        "pipeline": as_dict(plan.pipeline),
        "cells": [c.key for c in plan.cells()],
        "sections": plan.sections,
    }
    if len(points) > 1:  # a one-N job's report.json keeps its bytes: its report does not rerun
        files["report.json"]["curve"] = [{"slot": slot, "n": n} for slot, n in points]
    return files


def write_stage_configs(plan: Plan, out: Path) -> list[str]:
    """Write every stage config under `out` (bytes change only when the content does)."""
    files = stage_configs(plan)
    for rel, content in files.items():
        atomic_write_json(Path(out) / rel, content)
    return sorted(files)


def read_stage_config(path: str | Path) -> dict[str, Any]:
    import json

    from midg.datasets.errors import DatasetError
    from midg.datasets.yolo import read_text

    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "stage config missing: run the `config` stage first (`dvc repro config`)")
    try:
        cfg = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(cfg, dict) or "active" not in cfg and path.name not in ("data.json", "report.json"):
        raise DatasetError(path, "not a stage config written by the `config` stage")
    return cfg
