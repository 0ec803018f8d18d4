"""The DeepPCB benchmark: does MIDG data beat real-only and copy-paste when defects are scarce?

Every cell (detector x condition x seed) is independent and resumable: its work lives in
WORK/<seed>/..., finished steps leave a `.done` marker, and a finished cell is appended
to the results JSON (atomically, by this one process) only when its metrics exist, so a
half cell never gets in. Rerunning the same command skips what is done; `--deadline-s`
stops launching new work before a time limit (the GPU machine gives 10-minute calls).

    # local, once: import DeepPCB, cut each seed's nested subsets (N = 10 inside 30 inside 100),
    # and make the bundle that travels to the GPU machine
    python benchmarks/deeppcb.py prepare --n-images 10 30 100 --seeds 0 1 2
    # the data-efficiency sweep on this machine (bench-cpu: 320 px, yolov8n, plateau budget), N = 30 first
    nice python benchmarks/deeppcb.py run --profile bench-cpu --detectors yolov8n --threads 1 \
        --conditions real copypaste_annotated midg_annotated midg --n-images 30 \
        --results benchmarks/results/deeppcb_curve_bench-cpu.json --work data/bench_curve
    # GPU (paper profile): the same sweep, three detectors, 10-minute calls
    python benchmarks/deeppcb.py run --profile paper --bundle .devdata/deeppcb --work /tmp/bench \
        --results benchmarks/results/deeppcb_curve_paper.json --device cuda --parallel 6 --deadline-s 540
    # tables, the bar plot, and the figure of mAP against N: benchmarks/cell_tables.py
    python benchmarks/cell_tables.py table benchmarks/results/deeppcb_curve_bench-cpu.json
    python benchmarks/cell_tables.py curve benchmarks/results/deeppcb_curve_bench-cpu.json --out benchmarks/results/deeppcb_curve_bench-cpu.png

Conditions: `real` (the N annotated images); `copypaste`, `poisson` and `midg` (real + S
synthetic images painted into the normals, DeepPCB's templates; the MIDG generator is trained
only on the N images of that seed); `*_annotated` (the same methods painting into the N
annotated images themselves, their real labels kept: `midg generate --canvas annotated`);
`copypaste_rect` and `midg_rect` (labelled with the painted rectangle instead of the learned
box); `midg_annotated_misses` (the closed loop: `midg_annotated` with the class mix following
the real-only detector's per-class misses on the val split, weight (1 - AP50_c)^2; it needs the
real cell of its N and seed, for the first `--detectors` entry, to be finished first). Every condition of a table gets the same detector budget rule (the profile's: a plateau
on the real val split, the same limits). The seed drives the subset, the generation and the
training; each (N, seed) has its own generator, library and synthetic sets.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_steps import (bench_params, done, git_dirty, git_rev, mark_done, midg_cmd,  # noqa: E402,F401
                         profile_params, sh)

# arm -> (generation method, box style, canvas); `real` has no synthetic set. The *_rect arms label
# each defect with the rectangle it was painted into (`midg generate --box-style rect`), the
# convention closest to DeepPCB's loose annotator boxes (benchmarks/results/label_convention_deeppcb.json).
# The canvas: normals (DeepPCB's clean templates: the arms of every table before 2026-12-07) or the
# N annotated images themselves (`--canvas annotated`, their real labels kept).
SYNTHETIC_ARMS = {"copypaste": ("copypaste", "learned", "normals"), "poisson": ("poisson", "learned", "normals"),
                  "midg": ("midg", "learned", "normals"),
                  "copypaste_rect": ("copypaste", "rect", "normals"), "midg_rect": ("midg", "rect", "normals"),
                  "copypaste_annotated": ("copypaste", "learned", "annotated"),
                  "poisson_annotated": ("poisson", "learned", "annotated"),
                  "midg_annotated": ("midg", "learned", "annotated"),
                  "midg_annotated_misses": ("midg", "learned", "annotated")}
# arms whose class mix is not the real one: arm -> how it is chosen (misses: misses_class_mix)
CLASS_MIX_ARMS = {"midg_annotated_misses": "misses"}
CONDITIONS = ("real", *SYNTHETIC_ARMS)
LIBRARY_METHODS = ("copypaste", "poisson")  # the non-learned baselines paste from the real defect library
SCRIPT = "benchmarks/deeppcb.py"  # how a cell's record names its command (bsdata.py runs these cells too)


# ---------------------------------------------------------------- prepare (local)


def prepare(args: argparse.Namespace) -> None:
    """Import DeepPCB, pick each seed's N-image subset, and write a bundle small enough to
    carry (64 MiB): the union of the subsets, val, the 500 test images, some normals."""
    from midg.datasets.layout import DatasetWriter, load_dataset

    full = Path(args.work) / "deeppcb_full"
    if not (full / "meta.json").exists():
        sh(midg_cmd() + ["data", "import", "deeppcb", str(args.deeppcb), str(full)], Path(args.work) / "prepare.log")
    by_n: dict[str, dict[str, list[str]]] = {}  # N -> seed -> image names; one seed's subsets are nested
    for n in sorted(args.n_images):
        for seed in args.seeds:
            sub = Path(args.work) / f"deeppcb_n{n}_s{seed}"
            if not (sub / "meta.json").exists():
                sh(midg_cmd() + ["data", "subset", str(full), str(sub), "--n-images", str(n), "--seed", str(seed)],
                   Path(args.work) / "prepare.log")
            by_n.setdefault(str(n), {})[str(seed)] = [Path(e.file).name for e in load_dataset(sub).images("train")]
    for small, large in zip(sorted(args.n_images), sorted(args.n_images)[1:]):
        for seed in args.seeds:  # `midg data subset` shuffles with the seed and takes the first N
            if not set(by_n[str(small)][str(seed)]) <= set(by_n[str(large)][str(seed)]):
                raise SystemExit(f"seed {seed}: the N = {small} subset is not inside the N = {large} one")
    subsets = by_n[str(max(args.n_images))]
    ds = load_dataset(full)
    keep = set().union(*map(set, subsets.values()))
    normals = ds.normals[: args.n_normals]
    with DatasetWriter(Path(args.out), ds.names, source="deeppcb-bundle", seed=0,
                       params={"n_images": max(args.n_images), "n_images_sweep": sorted(args.n_images),
                               "seeds": args.seeds, "n_normals": len(normals)}) as w:
        for e in ds.images("train"):
            if Path(e.file).name in keep:
                w.add_image("train", Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes), template=e.template)
        for split in ("val", "test"):
            for e in ds.images(split):
                w.add_image(split, Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes))
        for n in normals:
            w.add_normal(Path(n).name, src=ds.path(n))
        # templates of kept train images must travel too (paired training of the inpainting block)
        have = {Path(n).name for n in normals}
        for e in ds.images("train"):
            if Path(e.file).name in keep and e.template and Path(e.template).name not in have:
                w.add_normal(Path(e.template).name, src=ds.path(e.template))
                have.add(Path(e.template).name)
        w.update_meta(subsets=subsets, subsets_by_n=by_n,
                      subset_command="midg data subset DEEPPCB OUT --n-images N --seed S")
    print(f"bundle written to {args.out}")


# ---------------------------------------------------------------- run


def subset_names(meta: dict, seed: int, n: int) -> list[str]:
    """The seed's N training images as `prepare` recorded them (bundles from before the sweep: one N)."""
    by_n = meta.get("subsets_by_n") or {str(len(next(iter(meta["subsets"].values())))): meta["subsets"]}
    if str(n) not in by_n or str(seed) not in by_n[str(n)]:
        raise SystemExit(f"the bundle has no N = {n} subset for seed {seed} (it has N = {sorted(by_n, key=int)}): "
                         "rerun `deeppcb.py prepare --n-images ...`")
    return by_n[str(n)][str(seed)]


def cell_dir(work: Path, n: int, seed: int) -> Path:
    return Path(work) / f"n{n}" / f"s{seed}"


def seed_subset(bundle: Path, seed: int, work: Path, n: int) -> Path:
    """The seed's N-image training set, cut from the bundle by the list `prepare` recorded."""
    from midg.datasets.layout import DatasetWriter, load_dataset

    out = cell_dir(work, n, seed) / "real"
    if (out / "meta.json").exists():
        return out
    ds = load_dataset(bundle)
    names = set(subset_names(ds.meta, seed, n))
    with DatasetWriter(out, ds.names, source="deeppcb-subset", seed=seed, params={"n_images": len(names)}) as w:
        for e in ds.images("train"):
            if Path(e.file).name in names:
                w.add_image("train", Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes), template=e.template)
        for e in ds.images("val"):
            w.add_image("val", Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes))
        for n in ds.normals:
            w.add_normal(Path(n).name, src=ds.path(n))
    return out


def prepare_seed(args: argparse.Namespace, seed: int, bp: dict, n: int) -> dict[str, list[Path]]:
    """Real subset, generator, and the synthetic sets of one seed and N: per condition, the --data folders."""
    work = Path(args.work)
    sdir = cell_dir(work, n, seed)
    log = sdir / "prepare.log"
    real = seed_subset(Path(args.bundle), seed, work, n)
    out = {"real": [real]}
    ckpt = sdir / "generator"
    methods = {SYNTHETIC_ARMS[c][0] for c in args.conditions if c in SYNTHETIC_ARMS}
    if "midg" in methods and not done(ckpt):
        cmd = midg_cmd() + ["generator", "train", str(real), "--out", str(ckpt), "--profile", args.profile,
                            "--params", str(args.params), "--device", args.device, "--seed", str(seed)]
        if (ckpt / "train_state").exists():
            cmd.append("--resume")
        sh(cmd, log)
        mark_done(ckpt)
    lib = sdir / "library"
    if methods & set(LIBRARY_METHODS) and not done(lib):
        # the profile's crop size: the library's patches must match what generation pastes
        crop = (profile_params(args.params, args.profile).get("generator") or {}).get("crop_size", 64)
        sh(midg_cmd() + ["generator", "library", str(real), "--out", str(lib), "--crop-size", str(crop)], log)
        mark_done(lib)
    for arm in (c for c in args.conditions if c in SYNTHETIC_ARMS):
        method, box_style, canvas = SYNTHETIC_ARMS[arm]
        syn = sdir / f"syn_{arm}"
        if not done(syn):
            extra = []
            if arm in CLASS_MIX_ARMS:
                extra = ["--class-mix", str(misses_class_mix(args, args.detectors[0], seed, n))]
            sh(midg_cmd() + ["generate", "--checkpoint", str(ckpt if method == "midg" else lib), "--normals", str(real),
                             "--out", str(syn), "--n-images", str(bp.get("synthetic_images", 1000)), "--seed", str(seed),
                             "--method", method, "--box-style", box_style, "--canvas", canvas, "--device", args.device,
                             "--profile", args.profile, "--params", str(args.params), *extra], log)
            mark_done(syn)
        out[arm] = [real, syn]  # trained as --data real --data syn: the detector mixes them at real_fraction
    return out


def misses_weights(per_class_ap50: dict[str, float]) -> dict[str, float]:
    """Class mix of the closed loop: weight (1 - AP50_c)^2, so the classes the real-only
    detector misses most get the most synthetic defects; a class without a score (no val
    box) gets the mean weight of the others; all equal where it misses nothing."""
    import math

    known = {c: (1.0 - min(max(float(ap), 0.0), 1.0)) ** 2 for c, ap in per_class_ap50.items()
             if ap is not None and math.isfinite(float(ap))}
    if not known or sum(known.values()) == 0:
        return {c: 1.0 for c in per_class_ap50}
    mean = sum(known.values()) / len(known)
    return {c: round(known.get(c, mean), 6) for c in per_class_ap50}


def misses_class_mix(args: argparse.Namespace, detector: str, seed: int, n: int) -> Path:
    """The class-mix file of the closed loop for one N and seed: the real-only cell's best
    weights scored per class on the real val split (never the test split), then misses_weights."""
    sdir = cell_dir(Path(args.work), n, seed)
    run_dir = sdir / f"{detector}_real" / "run"
    if not done(run_dir):
        raise RuntimeError(f"the closed-loop arm needs the real-only {detector} cell of N = {n}, seed {seed} "
                           f"first ({run_dir} is not finished): run --conditions real before midg_annotated_misses")
    out = sdir / f"class_mix_misses_{detector}.json"
    if not out.exists():
        from midg.datasets.atomic import atomic_write_json

        log = sdir / "prepare.log"
        preds, metrics = sdir / f"{detector}_real" / "preds_val.json", sdir / f"{detector}_real" / "metrics_val.json"
        if not preds.exists():
            sh(midg_cmd() + ["detector", "predict", "--run", str(run_dir), "--data", args.bundle, "--split", "val",
                             "--out", str(preds)], log)
        if not metrics.exists():
            sh(midg_cmd() + ["evaluate", "--gt", args.bundle, "--split", "val", "--pred", str(preds),
                             "--out", str(metrics)], log)
        m = json.loads(metrics.read_text())
        per_class = {c: v.get("ap50") if isinstance(v, dict) else v
                     for c, v in (m.get("per_class_ap50") or m.get("per_class") or {}).items()}
        if not per_class:
            raise RuntimeError(f"{metrics} has no per-class AP: cannot weigh the classes")
        atomic_write_json(out, misses_weights(per_class))
    return out


def run_cell(args: argparse.Namespace, detector: str, condition: str, seed: int, train_dirs: list[Path], bp: dict,
             n: int) -> dict:
    work = cell_dir(Path(args.work), n, seed) / f"{detector}_{condition}"
    log = work / "cell.log"
    run_dir = work / "run"
    t0 = time.time()
    if not done(run_dir):
        data_args = [a for d in train_dirs for a in ("--data", str(d))]  # real first: val and test, the real share
        cmd = midg_cmd() + ["detector", "train", "--detector", detector, *data_args, "--out", str(run_dir),
                            "--profile", args.profile, "--params", str(args.params), "--seed", str(seed),
                            "--device", args.device]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        if bp.get("imgsz"):
            cmd += ["--imgsz", str(bp["imgsz"])]
        if (run_dir / "meta.json").exists() or (run_dir / "train_state").exists():
            cmd.append("--resume")
        sh(cmd, log)
        mark_done(run_dir)
    preds = work / "preds.json"
    if not preds.exists():
        sh(midg_cmd() + ["detector", "predict", "--run", str(run_dir), "--data", args.bundle, "--split", "test",
                         "--out", str(preds)], log)
    metrics_path = work / "metrics.json"
    if not metrics_path.exists():
        sh(midg_cmd() + ["evaluate", "--gt", args.bundle, "--split", "test", "--pred", str(preds), "--out", str(metrics_path)], log)
    m = json.loads(metrics_path.read_text())
    run_meta = json.loads((run_dir / "meta.json").read_text()) if (run_dir / "meta.json").exists() else {}
    return {
        "detector": detector, "condition": condition, "n_images": n, "seed": seed,
        "canvas": SYNTHETIC_ARMS[condition][2] if condition in SYNTHETIC_ARMS else None,
        "map50": m["map50"], "map50_95": m["map50_95"], "map33": m.get("map33"),
        "deeppcb_ap": m.get("deeppcb_ap"), "deeppcb_f": m.get("deeppcb_f"),
        "per_class_ap50": m.get("per_class_ap50", m.get("per_class")),
        "steps": run_meta.get("steps_done", run_meta.get("steps")),
        "imgsz": run_meta.get("imgsz", (run_meta.get("config") or {}).get("imgsz")),
        "real_fraction": run_meta.get("real_fraction"), "budget": run_meta.get("budget"),
        "best_step": run_meta.get("best_step"), "val_curve": run_meta.get("val_curve"),
        "stopped_at": run_meta.get("stopped_at"), "plateau_rule": run_meta.get("plateau_rule"),
        "mixing": run_meta.get("mixing"),
        "synthetic_images": 0 if condition == "real" else bp.get("synthetic_images", 1000),
        "device": args.device_name or args.device, "profile": args.profile,
        "command": shlex.join(["python", SCRIPT, "run", "--profile", args.profile, "--detectors", detector,
                               "--conditions", condition, "--seeds", str(seed), "--n-images", str(n)]),
        "date": dt.date.today().isoformat(), "git_rev": args.git_rev or git_rev(),
        "git_dirty": False if args.git_rev else git_dirty(), "threads": args.threads,
        "train_seconds": run_meta.get("seconds"), "cell_seconds": round(time.time() - t0, 1),
    }


def load_results(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def append_result(path: Path, cell: dict) -> None:
    from midg.datasets.atomic import atomic_write_json

    cells = [c for c in load_results(path)
             if (c["detector"], c["condition"], c["seed"], c["profile"], c["n_images"]) !=
                (cell["detector"], cell["condition"], cell["seed"], cell["profile"], cell["n_images"])]
    cells.append(cell)
    cells.sort(key=lambda c: (c["detector"], c["n_images"], CONDITIONS.index(c["condition"]), c["seed"]))
    atomic_write_json(path, cells)


def sweep_sizes(args: argparse.Namespace, bp: dict) -> list[int]:
    """The N values of the sweep, in the order given (--n-images, else the profile's benchmark.n_images)."""
    n = args.n_images if args.n_images else bp.get("n_images", 100)
    return [int(v) for v in (n if isinstance(n, list) else [n])]


def run(args: argparse.Namespace) -> None:
    """The cells, grouped by (N, seed) in the order of --n-images then --seeds: each group's
    generator and synthetic sets are made just before its cells, so a partial sweep is
    already a result (N = 30 first: the scarce case the tool is for)."""
    start = time.time()
    bp = bench_params(Path(args.params), args.profile)
    results = Path(args.results)
    have = {(c["detector"], c["condition"], c["seed"], c["n_images"]) for c in load_results(results)
            if c["profile"] == args.profile}
    todo = [(d, c, s, n) for n in sweep_sizes(args, bp) for s in args.seeds for d in args.detectors
            for c in args.conditions if (d, c, s, n) not in have]
    print(f"{len(todo)} cells to do, {len(have)} already in {results}", flush=True)
    if not todo:
        return
    if args.executor == "ray":
        return run_on_ray(args, todo, results)
    left = lambda: args.deadline_s - (time.time() - start)  # noqa: E731
    groups = list(dict.fromkeys((n, s) for _, _, s, n in todo))
    with cf.ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for n, s in groups:
            if left() < args.min_cell_s:
                print(f"N = {n}, seed {s}: not started: deadline", flush=True)
                continue
            try:
                prepared = prepare_seed(args, s, bp, n)
            except Exception as exc:  # one failed preparation must not stop the other groups
                print(f"N = {n}, seed {s}: preparation failed: {exc}", flush=True)
                continue
            futures = {pool.submit(lambda d=d, c=c: None if left() < args.min_cell_s else
                                   run_cell(args, d, c, s, prepared[c], bp, n)): (d, c)
                       for d, c, s2, n2 in todo if (n2, s2) == (n, s)}
            for fut in cf.as_completed(futures):
                d, c = futures[fut]
                try:
                    cell = fut.result()
                except Exception as exc:  # one failed cell must not lose the others
                    print(f"cell {d}/{c}/seed {s}/N {n} failed: {exc}", flush=True)
                    continue
                if cell is None:
                    print(f"cell {d}/{c}/seed {s}/N {n} not started: deadline", flush=True)
                    continue
                append_result(results, cell)
                print(f"cell {d}/{c}/seed {s}/N {n}: map50={cell['map50']:.3f} map50_95={cell['map50_95']:.3f} "
                      f"(stopped at {cell.get('stopped_at') or cell.get('steps')}, best {cell.get('best_step')})",
                      flush=True)


# ---------------------------------------------------------------- the same work as Ray tasks


# the options of `run` a task passes on to `prepare-seed` and `cell` (everything that decides their work)
PASSED = ("profile", "params", "bundle", "work", "device", "device_name", "git_rev", "threads")


def passed_args(args: argparse.Namespace) -> list[str]:
    out = []
    for name in PASSED:
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def run_on_ray(args: argparse.Namespace, todo: list[tuple[str, str, int]], results: Path) -> None:
    """The cells on Ray (`--executor ray [--address]`): one task per seed's preparation (its
    generator, library and synthetic sets), one per cell, each cell once its seed is prepared;
    a cell asks for one GPU on CUDA, one CPU otherwise. Each finished cell is appended to the
    results by this process as it lands, so a failed or killed run keeps the finished cells and
    rerunning the command does only the rest. midg's own executor (pipelines/ray_executor.py)."""
    from midg.detectors.common import cuda_devices
    from midg.pipelines.ray_executor import Hooks, Task, connect, run_tasks
    from midg.pipelines.runner import ProgressView, stage_env

    if args.deadline_s != float("inf"):
        raise SystemExit("--deadline-s is for the local executor (a lent GPU machine's 10-minute calls)")
    work = Path(args.work).resolve()
    script = [sys.executable, str(Path(__file__).resolve())]
    gpus = cuda_devices(args.device)  # a cell on 0,1 is one YOLO model on both (ultralytics' DDP)
    need = {"num_cpus": 1, "num_gpus": gpus} if gpus else {"num_cpus": max(1, args.threads or 1)}
    groups = list(dict.fromkeys((n, s) for _, _, s, n in todo))
    conditions = sorted({c for _, c, _, _ in todo}, key=CONDITIONS.index)
    tasks = [Task(f"prepare n{n}/s{s}", [*script, "prepare-seed", *passed_args(args), "--seed", str(s), "--n", str(n),
                                         "--conditions", *conditions], resources=lambda: dict(need),
                  what="benchmark step")
             for n, s in groups]
    cell_json = {}
    for d, c, s, n in todo:
        name = f"cell {d}/{c}/n{n}/s{s}"
        cell_json[name] = cell_dir(work, n, s) / f"{d}_{c}" / "cell.json"
        tasks.append(Task(name, [*script, "cell", *passed_args(args), "--seed", str(s), "--n", str(n), "--detector", d,
                                 "--condition", c, "--out", str(cell_json[name])],
                          needs=[f"prepare n{n}/s{s}"], resources=lambda: dict(need), what="benchmark cell"))

    def after(name: str) -> None:
        if name in cell_json:
            cell = json.loads(cell_json[name].read_text())
            append_result(results, cell)
            print(f"cell {cell['detector']}/{cell['condition']}/seed {cell['seed']}/N {cell['n_images']}: "
                  f"map50={cell['map50']:.3f} map50_95={cell['map50_95']:.3f}", flush=True)

    ray = connect(args.address)
    try:
        with ProgressView(len(tasks), work / "ray-bench.log") as view:
            run_tasks(ray, tasks, ROOT, stage_env(ROOT), view, Hooks(after=after), log_path=work / "ray-tasks.json")
    finally:
        if args.address is None:
            ray.shutdown()


def prepare_seed_cmd(args: argparse.Namespace) -> None:
    """One Ray task: `prepare_seed` for one seed and the given conditions."""
    prepare_seed(args, args.seed, bench_params(Path(args.params), args.profile), args.n)


def cell_cmd(args: argparse.Namespace) -> None:
    """One Ray task: one cell, its record written to --out (the driver appends it)."""
    from midg.datasets.atomic import atomic_write_json

    bp = bench_params(Path(args.params), args.profile)
    args.conditions = [args.condition]
    train_dirs = prepare_seed(args, args.seed, bp, args.n)[args.condition]  # done by its prepare task: only paths here
    atomic_write_json(Path(args.out), run_cell(args, args.detector, args.condition, args.seed, train_dirs, bp, args.n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--deeppcb", default=str(ROOT.parent / "shared/datasets/DeepPCB"))
    p.add_argument("--out", default=str(ROOT / ".devdata/deeppcb"))
    p.add_argument("--work", default=str(ROOT / "data/bench_prepare"))
    p.add_argument("--n-images", type=int, nargs="+", default=[10, 30, 100],
                   help="the sweep's N values: one nested subset per N and seed")
    p.add_argument("--n-normals", type=int, default=300)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    common = argparse.ArgumentParser(add_help=False)  # what decides a cell's work: `run` and its Ray tasks
    common.add_argument("--profile", default="paper")
    common.add_argument("--params", default=str(ROOT / "params.yaml"))
    common.add_argument("--bundle", default=str(ROOT / ".devdata/deeppcb"))
    common.add_argument("--work", default=str(ROOT / "data/bench"))
    common.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    common.add_argument("--device", default="cpu")
    common.add_argument("--device-name", default=None, help="how the results name the device (e.g. 'NVIDIA H200')")
    common.add_argument("--git-rev", default=None)
    common.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per detector run (default: the profile's; 1 with --parallel on a CPU)")
    r = sub.add_parser("run", parents=[common])
    r.add_argument("--results", default=None)
    r.add_argument("--detectors", nargs="+", default=["yolov8n", "yolov5nu", "faster_rcnn"])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--n-images", type=int, nargs="+", default=None,
                   help="N values, done in this order (default: the profile's benchmark.n_images)")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a pool of --parallel cells in this process; ray: every seed's preparation and "
                        "every cell as a Ray task (pip install 'midg[ray]')")
    r.add_argument("--address", default=None, help="with --executor ray: auto or HOST:PORT of a running cluster "
                                                    "(default: a Ray started here for this run)")
    r.add_argument("--parallel", type=int, default=1)
    r.add_argument("--deadline-s", type=float, default=float("inf"))
    r.add_argument("--min-cell-s", type=float, default=0.0, help="do not start a cell with less time than this left")
    ps = sub.add_parser("prepare-seed", parents=[common], help="one seed's generator and synthetic sets (a Ray task)")
    ps.add_argument("--seed", type=int, required=True)
    ps.add_argument("--n", type=int, required=True)
    c = sub.add_parser("cell", parents=[common], help="one cell, its record to --out (a Ray task)")
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--n", type=int, required=True)
    c.add_argument("--detector", required=True)
    c.add_argument("--condition", required=True, choices=CONDITIONS)
    c.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "run" and args.results is None:
        args.results = str(ROOT / f"benchmarks/results/deeppcb_{args.profile}.json")
    {"prepare": prepare, "run": run, "prepare-seed": prepare_seed_cmd, "cell": cell_cmd}[args.cmd](args)


if __name__ == "__main__":
    main()
