"""How fast does `midg generate` make images, MIDG against copy-paste, on the same normals?

    .venv/bin/python benchmarks/generation_speed.py                          # demo-sized nets, 640 px boards
    .venv/bin/python benchmarks/generation_speed.py --profile bench-cpu --checkpoint CKPT \
        --normals data/deeppcb/normals --out benchmarks/results/generation_speed_deeppcb.json   # DeepPCB's 640 px templates
    .venv/bin/python benchmarks/generation_speed.py --device cuda --batch-size 256

Both methods run the whole stage (read normal, place rectangles, make pixels, derive boxes,
write PNG + labels + COCO) through `generate_dataset`, 1-3 defects per image, with the
profile's own `generate` section (edges, placement, batch size: what `midg run` uses), so
MIDG gets its default placement (auto: matched when the checkpoint has a paired library)
and copy-paste the sampler's. A folder of normals is the canvas (given a canonical dataset,
canvas auto would paint into its annotated images instead). The methods take turns,
`--repeats` times each; the JSON gives every run and the median, in wall and CPU seconds
(CPU seconds count both cores' work and move less than wall time when other processes
share the machine).
Without --checkpoint a generator of the profile's architecture is built by a 2-step
training run on procedural boards: inference speed depends on the architecture, not on
how well the weights are trained (the JSON says which weights were timed).
Writes benchmarks/results/generation_speed.json (or --out): images/s and defects/s per
method, device, torch threads and OpenMP wait policy, command, date, git revision, and the load average.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("MIDG_GIT_REVISION")
    if rev.returncode != 0:
        return os.environ.get("MIDG_GIT_REVISION")  # a copy without .git (e.g. a benchmark machine)
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def make_boards(work: Path, size: int, n_images: int) -> Path:
    from midg.datasets.demo import make_demo_dataset

    out = work / f"boards{size}"
    if not (out / "data.yaml").is_file():
        make_demo_dataset(out, n_images=n_images, seed=0, size=size)
    return out


def make_checkpoint(work: Path, boards: Path, profile: str, device: str) -> Path:
    """A generator of `profile`'s architecture after 2 training steps (speed, not quality)."""
    from rich.console import Console

    from midg.augment.config import generator_config
    from midg.augment.train import train_generator
    from midg.datasets.params import load_params

    out = work / f"ckpt_{profile}"
    if not (out / "generator.safetensors").is_file():
        cfg = generator_config(load_params(REPO / "params.yaml"), profile, steps=2, sample_every=0, log_every=1,
                               device=device)
        train_generator(boards, out, cfg, profile=profile, console=Console(file=io.StringIO()))
    return out


METHODS = ("midg", "copypaste")


def time_methods(ckpt: Path, normals: Path, work: Path, n_images: int, repeats: int, device: str, config) -> dict:
    """Each method timed `repeats` times, taking turns (a load that drifts touches both alike),
    after an untimed 2-image run each (first-call costs); per method the medians and every run."""
    import statistics

    from midg.augment.generate import generate_dataset

    def run(method: str, out: Path, n: int):
        return generate_dataset(ckpt, normals, out, n_images=n, seed=0, method=method, defects_per_image=(1, 3),
                                edges=config.edges, batch_size=config.batch_size, device=device, progress=False,
                                config=config)

    for m in METHODS:
        run(m, work / f"warmup_{m}", 2)
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for i in range(repeats):
        for m in METHODS:
            if device.startswith("cuda"):
                import torch

                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            ds = run(m, work / f"out_{m}_{i}", n_images)
            runs[m].append({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                            "defects": len(ds.meta["defects"]), "dropped": ds.meta["dropped"],
                            "placement": ds.meta["generate"]["params"]["placement"],
                            "canvas": ds.meta["generate"]["params"]["canvas"]})
    results = {}
    for m, rs in runs.items():
        seconds = statistics.median(r["seconds"] for r in rs)
        cpu = statistics.median(r["cpu_seconds"] for r in rs)
        assert len({r["defects"] for r in rs}) == 1, "same seed: the same defects in every run"
        results[m] = {"images": n_images, "defects": rs[0]["defects"], "dropped": rs[0]["dropped"],
                      "placement": rs[0]["placement"], "canvas": rs[0]["canvas"],
                      "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                      "images_per_s": round(n_images / seconds, 2), "defects_per_s": round(rs[0]["defects"] / seconds, 2),
                      "images_per_cpu_s": round(n_images / cpu, 2),
                      "runs_seconds": [round(r["seconds"], 3) for r in rs],
                      "runs_cpu_seconds": [round(r["cpu_seconds"], 3) for r in rs]}
    return results


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a trained MIDG checkpoint (default: build a 2-step one)")
    ap.add_argument("--profile", default="demo",
                    help="params.yaml profile: its generate section, and the built generator's architecture")
    ap.add_argument("--normals", type=Path, help="normal images (default: procedural boards of --size px)")
    ap.add_argument("--size", type=int, default=640, help="side of the procedural boards")
    ap.add_argument("--n-images", type=int, default=64, help="timed images per method")
    ap.add_argument("--batch-size", type=int, help="crops per forward pass (default: the profile's)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method, taking turns; the median is reported")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (2: the target machine)")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "generation_speed.json")
    ap.add_argument("--note", help="what the JSON should say about the inputs (how the checkpoint was made, ...)")
    args = ap.parse_args(argv)

    from midg.augment.openmp import sleep_idle_openmp_threads

    sleep_idle_openmp_threads()  # as `midg generate` does, before torch first loads (augment/openmp.py)
    import torch

    from midg.augment.generate_config import generate_config
    from midg.datasets.params import load_params

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="midg_genspeed_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        boards = make_boards(work, args.size, 24) if args.normals is None or args.checkpoint is None else None
        normals = args.normals or boards / "normals"  # a folder of normals: the canvas is the normals
        ckpt = args.checkpoint or make_checkpoint(work, boards, args.profile, args.device)
        config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
        gen_cfg = generate_config(load_params(REPO / "params.yaml"), args.profile, batch_size=args.batch_size)
        results = time_methods(ckpt, normals, work, args.n_images, args.repeats, args.device, gen_cfg)
    midg, cp = results["midg"], results["copypaste"]
    report = {
        "benchmark": "generation_speed",
        "results": results,
        "midg_vs_copypaste_time": round(midg["seconds"] / cp["seconds"], 2),
        "midg_vs_copypaste_cpu_time": round(midg["cpu_seconds"] / cp["cpu_seconds"], 2),
        "goal": ">= 10 images/s for MIDG on 2 CPU cores, within 3x of copy-paste",
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # PASSIVE unless the caller set one
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "checkpoint": str(args.checkpoint) if args.checkpoint else f"built: profile {args.profile}, 2 training steps",
        "generator": {"crop_size": config.get("crop_size"), "networks": config.get("networks"),
                      "profile": config.get("profile")},
        "normals": str(args.normals) if args.normals else f"procedural demo boards, {args.size} px",
        "profile": args.profile,
        "generate": {k: getattr(gen_cfg, k)
                     for k in ("edges", "placement", "canvas", "class_mix", "batch_size", "composite", "levels")},
        "repeats": args.repeats,
        "note": args.note,
        "defects_per_image": [1, 3],
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    from midg.datasets.atomic import atomic_write_json

    atomic_write_json(args.out, report)
    print(json.dumps({"results": results, "ratio": report["midg_vs_copypaste_time"],
                      "threads": report["torch_threads"], "out": str(args.out)}, indent=1))
    return report


if __name__ == "__main__":
    main()
