"""One plain function per DVC stage: its inputs and its config file in, files on disk out.

    python -m midg.pipelines.stages config --params params.yaml --out data/config
    python -m midg.pipelines.stages prepare --config data/config/data.json --out data/datasets/real
    python -m midg.pipelines.stages library --config data/config/library.json --data data/datasets/real --out data/library
    python -m midg.pipelines.stages generator_train --config data/config/generator.json --data data/datasets/real --out data/generator
    python -m midg.pipelines.stages generate --config data/config/generate-midg.json --data data/datasets/real --checkpoint data/generator --out data/synth/midg
    python -m midg.pipelines.stages merge --config data/config/merge-midg.json --real data/datasets/real --synth data/synth/midg --out data/datasets/midg
    python -m midg.pipelines.stages detect --config data/config/cells/yolov8n-midg-0.json --data data/datasets/midg --gt data/datasets/real --out data/runs/yolov8n-midg-0
    python -m midg.pipelines.stages evaluate --config data/config/cells/yolov8n-real-0.json --run data/runs/yolov8n-real-0 --gt data/datasets/real --out data/metrics/yolov8n-real-0.json
    python -m midg.pipelines.stages curve --config data/config/curve-1.json --out data/curve/1
    python -m midg.pipelines.stages report --config data/config/report.json --metrics data/metrics --runs data/runs --real data/datasets/real --synth data/synth --generator data/generator --curve data/curve --out reports

dvc.yaml runs exactly these commands (`midg run` drives it); `midg run --no-dvc` runs the
same functions in the same order without DVC. Only the `config` stage reads params.yaml;
every other stage reads the JSON the config stage wrote for it (see plan.py). A stage whose
config says `"active": false` (a cell or method the profile leaves out) writes a small
`skipped.json` marker in seconds and imports nothing heavy.
Heavy libraries (torch, ultralytics) are imported inside the stages that use them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from midg.datasets.atomic import atomic_dir, atomic_write_json, replace_dir
from midg.datasets.errors import ConfigError, DatasetError, MidgError

from .markers import SKIPPED, is_skipped, need as _need, skip_dir as _skip_dir  # noqa: F401 (SKIPPED, is_skipped: this module's API)
from .plan import read_stage_config, resolve_plan, write_stage_configs
from .run_inputs import inputs_signature, record_inputs, same_inputs

# ---------------------------------------------------------------- config


def config_stage(params: Path, out: Path, profile: str | None = None) -> list[str]:
    """params.yaml → one JSON per stage and per grid cell under `out` (see plan.py)."""
    from midg.datasets.params import load_params

    plan = resolve_plan(load_params(params), profile)
    _check_sections(plan)
    out.mkdir(parents=True, exist_ok=True)
    written = write_stage_configs(plan, out)
    stale = {p.relative_to(out).as_posix() for p in out.rglob("*.json")} - set(written)
    for rel in stale:  # a cell dropped from the grid must not leave an old config behind
        (out / rel).unlink()
    curve = plan.n_values()
    print(f"config: profile {plan.profile}, {len(plan.cells())} detector runs "
          f"({', '.join(plan.pipeline.detectors)} x {', '.join(plan.pipeline.conditions)} x seeds "
          f"{', '.join(map(str, plan.pipeline.seeds))})"
          + (f" at each N of the curve {', '.join(map(str, curve))}" if len(curve) > 1 else "") + f" -> {out}")
    return written


def _check_sections(plan) -> None:
    """Fail at the first stage, not an hour later: each owner's config parses its section."""
    from midg.augment.config import GeneratorConfig  # light: dataclasses only
    from midg.augment.generate import GenerateConfig
    from midg.datasets.params import fill
    from midg.detectors.config import config_from_dict

    p = plan.profile
    fill(GeneratorConfig, plan.sections["generator"], f"params profiles.{p}.generator")
    fill(GenerateConfig, plan.sections["generate"], f"params profiles.{p}.generate")
    det = config_from_dict(plan.sections["detector"], f"params profiles.{p}.detector")
    for name in plan.pipeline.detectors:
        det.for_detector(name)


# ---------------------------------------------------------------- data


def prepare_stage(config: Path, out: Path) -> None:
    """The real dataset of the job: demo boards, DeepPCB or the user's data, then the
    defect-scarce subset of `subset_n` annotated training images (val, test, normals kept)."""
    from midg.datasets.layout import load_dataset
    from midg.datasets.splits import subset

    cfg = read_stage_config(config)["data"]
    full = out.parent / f".{out.name}.full"  # a fixed path: the subset's meta.json names it
    if full.exists():
        shutil.rmtree(full)
    try:
        _import_source(cfg, full)
        ds = load_dataset(full)
        _check_splits(ds, cfg["source"])
        _check_normals(ds)
        n_annotated = sum(1 for e in ds.images("train") if e.boxes)
        if cfg["subset_n"] and cfg["subset_n"] < n_annotated:
            subset(full, out, cfg["subset_n"], cfg["seed"])
        else:
            if cfg["subset_n"] > n_annotated:
                raise DatasetError(config, f"data.subset_n={cfg['subset_n']} but the source ({cfg['source']}) has "
                                           f"only {n_annotated} annotated training images; lower subset_n (0 keeps all)")
            replace_dir(full, out)
    finally:
        shutil.rmtree(full, ignore_errors=True)
    _test_templates_out_of_normals(out)
    ds = load_dataset(out)
    _check_normals(ds)
    print(f"prepared {out}: " + ", ".join(f"{s} {len(ds.images(s))}" for s in ("train", "val", "test"))
          + f", normals {len(ds.normals)}")


def _import_source(cfg: dict[str, Any], out: Path) -> None:
    source = cfg["source"]
    if source == "demo":
        from midg.datasets.demo import make_demo_dataset

        make_demo_dataset(out, n_images=cfg["n_images"], seed=cfg["seed"], size=cfg["size"],
                          zoom=cfg.get("zoom", 1.0))
    elif source == "deeppcb":
        from midg.datasets.deeppcb import import_deeppcb

        import_deeppcb(cfg["deeppcb_root"], out, seed=cfg["seed"])
    else:
        _import_user_data(Path(source), out, cfg)
    if cfg.get("normals"):
        _add_normals(out, Path(cfg["normals"]))


def _import_user_data(src: Path, out: Path, cfg: dict[str, Any]) -> None:
    """A canonical folder (copied), an ultralytics dataset (folder or data.yaml) or a COCO .json."""
    if not src.exists():
        raise DatasetError(src, "data source does not exist (a canonical dataset folder, a data.yaml or a COCO .json)")
    folder = src if src.is_dir() else src.parent
    if src.suffix.lower() == ".json":
        from midg.datasets.imports import import_coco

        images = Path(cfg["coco_images"]) if cfg.get("coco_images") else src.parent
        single = out.parent / f".{out.name}.coco"
        try:
            import_coco(src, images, single, split="train")
            _split_three_ways(single, out, cfg["seed"])
        finally:
            shutil.rmtree(single, ignore_errors=True)
    elif (folder / "data.yaml").is_file() and (folder / "meta.json").is_file() and (src.is_dir() or src.name == "data.yaml"):
        from midg.datasets.layout import load_dataset

        load_dataset(folder, check_images=True)  # a canonical dataset: check it, then copy it
        with atomic_dir(out) as tmp:
            shutil.copytree(folder, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.cache"))
    elif src.suffix.lower() in (".yaml", ".yml") or (folder / "data.yaml").is_file():
        from midg.datasets.imports import import_yolo

        import_yolo(src, out)
    else:
        raise DatasetError(src, "not a dataset midg can read: expected a canonical folder (data.yaml + meta.json), "
                                "an ultralytics data.yaml (or its folder) or a COCO instances .json")


COCO_SPLIT = {"val": 0.1, "test": 0.2}  # one COCO file has no splits: a seeded 70/10/20 draw makes them


def _split_three_ways(src: Path, out: Path, seed: int) -> None:
    """A one-split dataset (a COCO file's images) into train/val/test, a seeded draw of whole images."""
    import random

    from midg.datasets.layout import DatasetWriter, load_dataset

    ds = load_dataset(src)
    entries = sorted(ds.images("train"), key=lambda e: e.file)
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    n_test, n_val = round(len(entries) * COCO_SPLIT["test"]), round(len(entries) * COCO_SPLIT["val"])
    split_of = {i: "test" if r < n_test else "val" if r < n_test + n_val else "train" for r, i in enumerate(order)}
    if min(n_test, n_val) < 1 or len(entries) - n_test - n_val < 1:
        raise DatasetError(src, f"{len(entries)} images are too few to split into train, val and test")
    with DatasetWriter(out, ds.names, source=ds.meta.get("source", "coco"), seed=seed,
                       params={"split": COCO_SPLIT, "seed": seed}) as w:
        for i, e in enumerate(entries):
            w.add_image(split_of[i], Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes))
        for rel in ds.normals:
            w.add_normal(Path(rel).name, src=ds.path(rel))


def _add_normals(dataset: Path, normals: Path) -> None:
    """Merge a folder of defect-free images into the dataset's normals/ (through splits.merge)."""
    from midg.datasets.images import is_image_file
    from midg.datasets.layout import DatasetWriter, load_dataset
    from midg.datasets.splits import merge

    if not normals.is_dir():
        raise DatasetError(normals, "normals folder does not exist")
    files = sorted(p for p in normals.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise DatasetError(normals, "no images in the normals folder")
    ds = load_dataset(dataset)
    only = dataset.parent / f".{dataset.name}.normals"
    with DatasetWriter(only, ds.names, source="normals", params={"folder": str(normals)}) as w:
        for p in files:
            w.add_normal(p.name, src=p)
    merged = dataset.parent / f".{dataset.name}.merged"
    try:
        merge([dataset, only], merged)
        replace_dir(merged, dataset)
    finally:
        shutil.rmtree(only, ignore_errors=True)
        shutil.rmtree(merged, ignore_errors=True)


_WRITER_META = {"format", "source", "tool", "version", "python", "seed", "params", "names", "counts", "pairs"}


def _test_templates_out_of_normals(root: Path) -> int:
    """Move the templates of test images from normals/ to templates/test/ (as the DeepPCB
    importer does): synthetic training images painted on a test board's own defect-free
    twin would leak the test set into training. Returns how many moved."""
    from midg.datasets.layout import DatasetWriter, load_dataset

    ds = load_dataset(root)
    leaked = {e.template for e in ds.images("test") if e.template in set(ds.normals)}
    if not leaked:
        return 0
    fixed = root.parent / f".{root.name}.fixed"
    try:
        with DatasetWriter(fixed, ds.names, source=ds.meta.get("source", "prepare"), seed=ds.meta.get("seed"),
                           params=ds.meta.get("params", {})) as w:
            moved = {}
            for rel in ds.normals:
                if rel in leaked:
                    moved[rel] = w.add_file(f"templates/test/{Path(rel).name}", src=ds.path(rel))
                else:
                    moved[rel] = w.add_normal(Path(rel).name, src=ds.path(rel))
            for split in ("train", "val", "test"):
                for e in ds.images(split):
                    template = e.template
                    if template is not None and template not in moved:  # an extra file, e.g. templates/val/
                        moved[template] = w.add_file(template, src=ds.path(template))
                    template = moved.get(template) if template is not None else None
                    w.add_image(split, Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes), template=template)
            w.update_meta(**{k: v for k, v in ds.meta.items() if k not in _WRITER_META},
                          test_templates=f"{len(leaked)} templates of test images moved from normals/ to "
                                         "templates/test/ by the prepare stage: no test board reaches training")
        replace_dir(fixed, root)
    finally:
        shutil.rmtree(fixed, ignore_errors=True)
    print(f"prepare: {len(leaked)} test-image templates kept out of normals/ (templates/test/)")
    return len(leaked)


def _check_normals(ds) -> None:
    if not ds.normals:
        raise DatasetError(ds.root, "the dataset has no normals/ (defect-free images, other than test-image "
                                    "templates) to paint defects into: give them with `midg run --normals DIR` "
                                    "(params: data.normals)")


def _check_splits(ds, source: str) -> None:
    for split in ("train", "val", "test"):
        if not ds.images(split):
            raise DatasetError(ds.root / "images" / split,
                               f"the {source!r} data has no {split} images: the benchmark trains on train, "
                               f"selects on val and reports on test; give a dataset with all three splits")


# ---------------------------------------------------------------- generator


def library_stage(config: Path, data: Path, out: Path) -> None:
    """The real-defect library and sampler statistics: what copy-paste needs (no GAN)."""
    cfg = read_stage_config(config)
    if not cfg["active"]:
        return _skip_dir(out, "copypaste is not among the profile's conditions")
    from midg.augment.library import write_library_folder
    from midg.datasets.layout import load_dataset

    write_library_folder(load_dataset(_need(data, "the real dataset")), out)
    print(f"library -> {out}")


def generator_train_stage(config: Path, data: Path, out: Path) -> None:
    """Train the MIDG generator on the real dataset into `out` (a persist output: resumes)."""
    cfg = read_stage_config(config)
    if not cfg["active"]:
        return _skip_dir(out, "midg is not among the profile's conditions")
    from midg.augment.checkpoint import has_train_state
    from midg.augment.config import generator_config
    from midg.augment.train import train_generator

    gcfg = generator_config({"profiles": {cfg["profile"]: {"generator": cfg["generator"]}}}, cfg["profile"])
    data = _need(data, "the real dataset")
    signature = inputs_signature(config, data, *_code("augment"))
    resume = has_train_state(out) and same_inputs(out, signature)
    if not resume and out.exists():
        shutil.rmtree(out)  # other inputs than the run there was made from: start afresh
    record_inputs(out, signature)
    train_generator(data, out, gcfg, profile=cfg["profile"], resume=resume)


def _code(package: str) -> list[Path]:
    """The source of a midg subpackage and of this module (what the stage's deps list)."""
    import importlib

    pkg = Path(importlib.import_module(f"midg.{package}").__file__).parent
    return [pkg, Path(__file__)]



def generate_stage(config: Path, data: Path, checkpoint: Path, out: Path) -> None:
    """S synthetic images by `method` (midg or copypaste), on the real dataset's normals.

    Both methods get the same generate section, count and seed, hence the same rectangles.
    """
    cfg = read_stage_config(config)
    if not cfg["active"]:
        return _skip_dir(out, "this method is not among the profile's conditions")
    from midg.augment.openmp import sleep_idle_openmp_threads

    sleep_idle_openmp_threads()  # before torch first loads (augment/openmp.py)
    from midg.augment.generate import generate_dataset
    from midg.augment.generate_config import generate_config

    gcfg = generate_config({"profiles": {cfg["profile"]: {"generate": cfg["generate"]}}}, cfg["profile"],
                           method=cfg["method"])
    generate_dataset(_need(checkpoint, "a generator checkpoint or library"), _need(data, "the real dataset"), out,
                     n_images=gcfg.n_images, seed=gcfg.seed, method=cfg["method"], classes=gcfg.classes,
                     defects_per_image=gcfg.defects_per_image, edges=gcfg.edges, batch_size=gcfg.batch_size,
                     config=gcfg)


def merge_stage(config: Path, real: Path, synth: Path, out: Path) -> None:
    """The training set of a synthetic condition: real (train/val/test) + synthetic (train)."""
    cfg = read_stage_config(config)
    if not cfg["active"]:
        return _skip_dir(out, "this condition is not in the profile")
    from midg.datasets.splits import merge

    merge([_need(real, "the real dataset"), _need(synth, "the synthetic dataset")], out)
    print(f"merged {real} + {synth} -> {out}")


# ---------------------------------------------------------------- detectors


PREDICTIONS = "predictions_test.json"  # in each run folder: COCO results on the real test split


def detect_stage(config: Path, data: Path, gt: Path, out: Path) -> None:
    """Train one detector on one condition's dataset with one seed, then predict `gt`'s
    (the real dataset's) test split into out/predictions_test.json.

    `out` is a persist output: a run interrupted with the same config resumes; a run with
    another config (a params change) starts afresh.
    """
    cfg = read_stage_config(config)
    if not cfg["active"]:
        return _skip_dir(out, "this cell is not in the profile's detectors x conditions x seeds")
    from midg.detectors.base import predict, train
    from midg.detectors.config import config_from_dict

    det = config_from_dict(cfg["detector_params"], f"params profiles.{cfg['profile']}.detector")
    det = dataclasses.replace(det.for_detector(cfg["detector"]), seed=cfg["seed"])
    data = _need(data, "the training dataset of this condition")
    signature = inputs_signature(config, data, *_code("detectors"))
    resume = (out / "meta.json").is_file() and same_inputs(out, signature)
    if not resume and out.exists():
        shutil.rmtree(out)  # a finished run of other inputs, or a stale marker: start afresh
    record_inputs(out, signature)
    train(cfg["detector"], [data], out, det, resume=resume)
    predict(out, _need(gt, "the real dataset"), "test", out / PREDICTIONS)


def evaluate_stage(config: Path, run: Path, gt: Path, out: Path) -> None:
    """COCO mAP of one run's test predictions against the real test split → metrics JSON."""
    cfg = read_stage_config(config)
    if not cfg["active"]:
        atomic_write_json(out, {"skipped": True})
        print(f"skipped: cell not in the profile -> {out}")
        return
    from midg.detectors.evaluate import evaluate_split

    full = evaluate_split(_need(gt, "the real dataset"), "test", _need(run / PREDICTIONS, "the run's predictions"))
    meta = json.loads((run / "meta.json").read_text(encoding="utf-8"))
    # what `dvc metrics show` lists per run: the scores, then who and what budget made them
    metrics = {
        "map50": full["map50"], "map50_95": full["map50_95"], "map33": full["map33"], "ar100": full["ar100"],
        "per_class": {name: {"ap50": v["ap50"], "ap": v["ap"]} for name, v in full["per_class"].items()},
        "detector": cfg["detector"], "condition": cfg["condition"], "seed": cfg["seed"],
        "steps": meta.get("steps_done"), "batch": meta.get("batch"), "images_seen": meta.get("images_seen"),
        "train_seconds": meta.get("seconds"), "device": meta.get("device"),
        "evaluator": f"{full['evaluator']} {full['evaluator_version']}", "test_images": full["counts"]["images"],
        "test_boxes": full["counts"]["gt_boxes"], "predictions": full["counts"]["predictions"],
    }
    if metrics["map50"] is None or metrics["map50_95"] is None:
        raise DatasetError(gt / "annotations" / "test.json", "the test split has no boxes to score against")
    atomic_write_json(out, metrics)
    print(f"evaluated {cfg['key']}: mAP50 {metrics['map50']:.4f}, mAP50-95 {metrics['map50_95']:.4f} -> {out}")


# ---------------------------------------------------------------- report


def curve_stage(config: Path, out: Path) -> None:
    """One more N of a data-efficiency curve: prepare to evaluate at that N, under `out`."""
    cfg = read_stage_config(config)
    if not cfg["active"]:
        return _skip_dir(out, "the profile's data.subset_n names no N for this curve slot")
    from .curve_point import run_point

    run_point(cfg, out)


def report_stage(config: Path, metrics: Path, runs: Path, real: Path, synth: Path, generator: Path,
                 curve: Path, out: Path, generator_metrics: Path | None = None) -> None:
    from .report import build_report

    build_report(read_stage_config(config), metrics_dir=metrics, runs_dir=runs, real=real, synth_dir=synth,
                 generator_dir=generator, curve_dir=curve, out_dir=out, generator_metrics=generator_metrics)


# ---------------------------------------------------------------- command line


STAGES: dict[str, tuple[Callable[..., Any], list[str]]] = {
    "config": (config_stage, ["params", "out"]),
    "prepare": (prepare_stage, ["config", "out"]),
    "library": (library_stage, ["config", "data", "out"]),
    "generator_train": (generator_train_stage, ["config", "data", "out"]),
    "generate": (generate_stage, ["config", "data", "checkpoint", "out"]),
    "merge": (merge_stage, ["config", "real", "synth", "out"]),
    "detect": (detect_stage, ["config", "data", "gt", "out"]),
    "evaluate": (evaluate_stage, ["config", "run", "gt", "out"]),
    "curve": (curve_stage, ["config", "out"]),
    "report": (report_stage, ["config", "metrics", "runs", "real", "synth", "generator", "curve", "out"]),
}


def run_stage(name: str, **paths: str | Path) -> None:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; valid: {', '.join(STAGES)}")
    fn, args = STAGES[name]
    fn(**{k: Path(v) for k, v in paths.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m midg.pipelines.stages", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, (fn, args) in STAGES.items():
        p = sub.add_parser(name, help=(fn.__doc__ or "").split("\n")[0])
        for a in args:
            p.add_argument(f"--{a}", required=True)
        if name == "report":
            p.add_argument("--generator-metrics", dest="generator_metrics")
    ns = vars(parser.parse_args(argv))
    name = ns.pop("stage")
    try:
        run_stage(name, **ns)
    except MidgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
