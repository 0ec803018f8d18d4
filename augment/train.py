"""Train the MIDG generator on a canonical dataset.

    midg generator train data/demo --out runs/generator --profile demo
    midg generator train data/demo --out runs/generator --profile demo --resume   # after Ctrl-C / kill
    midg generator train data/deeppcb --out runs/gen_paper --profile paper --device cuda

    from midg.augment.train import train_generator
    summary = train_generator("data/demo", "runs/generator", cfg, profile="demo")

The run folder describes itself (augment/checkpoint.py has the layout): config.json is
written at the start and again at the end, metrics.csv gets one row of mean losses per
`log_every` steps, samples/step_NNNNNN.png a preview grid every `sample_every` steps,
train_state/ a resume point every `save_every` steps and at the end.

Reproducibility: every random draw comes from generators seeded from cfg.seed (the data
order and augmentation from one torch.Generator, noise and teacher-forcing coins from the
model's own) whose states are saved with each resume point, so on the CPU an interrupted
run resumed with --resume ends with the same weights, bit for bit, as an uninterrupted
one. On CUDA (bf16 autocast, cuDNN autotuning) runs are close but not bit-identical.
"""

from __future__ import annotations

import csv
import io
import math
import platform
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from midg.datasets.atomic import atomic_write_json, atomic_write_text
from midg.datasets.errors import ConfigError, DatasetError, MidgError
from midg.datasets.layout import load_dataset, tool_version
from midg.datasets.locking import OutputLock, recover_folder

from . import checkpoint as ckpt
from .config import GeneratorConfig, config_dict
from .model import MIDGModel
from .samples import training_grid, write_grid
from .trainset import build_training_set, preview_batch, sample_batch

METRICS_FILE = "metrics.csv"
# Files a training run writes: a folder holding only these (and no train_state) may be
# started afresh; anything else in --out is someone else's and is never overwritten.
RUN_FILES = {"config.json", "generator.safetensors", "library.safetensors", "stats.json", "metrics.csv",
             "metrics.json", "samples", "train_state"}
# Config keys a resumed run may change: they do not alter what one step computes.
RESUMABLE_CHANGES = {"steps", "device", "threads", "log_every", "sample_every", "save_every", "fp16_export"}


class TrainingDiverged(MidgError):
    """A loss became NaN or infinite: the run stops and says which."""


def seed_everything(seed: int) -> None:
    """The one place seeds are set: python, numpy, torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("generator.device is 'cuda' but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def versions() -> dict[str, str]:
    import safetensors

    return {"midg": tool_version(), "torch": torch.__version__, "numpy": np.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def _check_out_dir(out: Path, resume: bool) -> bool:
    """True when a resume point exists and will be used; refuses to clobber anything."""
    if out.exists() and not out.is_dir():
        raise DatasetError(out, "exists and is not a folder")
    if ckpt.has_train_state(out):
        if not resume:
            raise DatasetError(out, "already holds a training run (train_state/last.json): pass --resume to "
                                    "continue it, or choose another --out")
        return True
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES and not p.name.startswith("."))
        if foreign:
            raise DatasetError(out, f"folder holds files a training run does not write ({', '.join(foreign[:5])}); "
                                    "refusing to train into it")
    return False


def _check_resumable(saved: dict[str, Any], cfg: GeneratorConfig, where: Path) -> None:
    now = config_dict(cfg)
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ConfigError(f"{where}: cannot resume with a different config ({detail}); only "
                          f"{sorted(RESUMABLE_CHANGES)} may change")


class MetricsLog:
    """metrics.csv: step, seconds, then one column per loss; rewritten up to `keep_step`
    when resuming (rows after the resume point belong to the lost part of the run)."""

    def __init__(self, path: Path, columns: list[str], keep_step: int):
        self.path = path
        self.columns = ["step", "seconds", *columns]
        rows = []
        if keep_step > 0 and path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames == self.columns:
                    rows = [r for r in reader if r["step"].isdigit() and int(r["step"]) <= keep_step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())

    def append(self, step: int, seconds: float, losses: dict[str, float]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            row = [step, f"{seconds:.2f}", *(f"{losses[c]:.6g}" for c in self.columns[2:])]
            csv.writer(fh, lineterminator="\n").writerow(row)


def _format_losses(losses: dict[str, float]) -> str:
    keys = ("inpaint_hole_l1", "edge_bce", "defect_l1", "d_total")
    return "  ".join(f"{k} {losses[k]:.3f}" for k in keys if k in losses)


def train_generator(dataset_root: str | Path, out: str | Path, cfg: GeneratorConfig, *, profile: str = "custom",
                    resume: bool = False, console: Console | None = None, init: str | Path | None = None) -> dict[str, Any]:
    """Train (or resume) a generator run in `out`; returns the summary also written to metrics.json."""
    threads_before = torch.get_num_threads()
    try:
        with OutputLock(out, what="generator checkpoint"):  # a second trainer into `out` is refused at once
            recover_folder(out)  # what a killed run's atomic writes left (train_state swap, .tmp files)
            return _train(dataset_root, out, cfg, profile=profile, resume=resume, console=console or Console(stderr=True),
                          init=init)
    except OSError as exc:  # disk full, read-only folder: one clear line; saved resume points stay intact
        detail = f" ({exc.filename})" if exc.filename else ""
        raise DatasetError(out, f"could not write the checkpoint: {exc.strerror or exc}{detail}; the last saved "
                                "resume point is kept: free the space and rerun with --resume") from None
    finally:
        torch.set_num_threads(threads_before)  # cfg.threads is this run's setting, not the process's


def _train(dataset_root: str | Path, out: str | Path, cfg: GeneratorConfig, *, profile: str, resume: bool,
           console: Console, init: str | Path | None = None) -> dict[str, Any]:
    out = Path(out)
    if init is not None:
        # a fine-tune keeps the start point's network shapes, whatever the profile says
        import dataclasses

        init_cfg = ckpt.load_checkpoint_config(ckpt.resolve_checkpoint(init)).get("generator", {})
        cfg = dataclasses.replace(cfg, **{k: init_cfg[k] for k in ckpt.ARCHITECTURE_KEYS if k in init_cfg})
    resuming = _check_out_dir(out, resume)
    if resume and not resuming:
        console.print(f"[yellow]note:[/] {out} has no resume point yet: starting from step 1")
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotuning pays; CPU runs stay deterministic

    dataset = load_dataset(dataset_root)
    with console.status("cutting training crops"):
        ts = build_training_set(dataset, cfg)
    saved_state = ckpt.load_train_state(out) if resuming else None
    if saved_state is not None:
        saved_config = ckpt.load_checkpoint_config(out)
        _check_resumable(saved_config.get("generator", {}), cfg, out / ckpt.CONFIG_FILE)
        if saved_config["classes"] != list(dataset.names) or saved_config["channels"] != ts.channels:
            raise DatasetError(dataset.root, "is not the dataset this run was trained on "
                                             f"(classes {saved_config['classes']}, channels {saved_config['channels']})")
        sampler_stats = saved_config.get("sampler_stats")
    else:
        out.mkdir(parents=True, exist_ok=True)
        from .library import fit_defect_stats, write_library  # lazy: the library is the generation side's

        with console.status("writing the defect library"):
            sampler_stats = fit_defect_stats(dataset)
            write_library(dataset, out, crop_size=cfg.crop_size)

    seed_everything(cfg.seed)
    ts.to(device)
    model = MIDGModel(cfg, channels=ts.channels, num_classes=len(dataset.names), device=device)
    data_rng = torch.Generator().manual_seed(cfg.seed)
    start, elapsed_before = 1, 0.0
    init_record = None
    if init is not None and saved_state is None:
        init_record = ckpt.init_generators(model, init, list(dataset.names))
        console.print(f"fine-tuning from {init_record['from']}: classes kept {init_record['classes_kept']}, "
                      f"new {init_record['classes_new']}")
    if saved_state is not None:
        tensors, meta = saved_state
        model.load_train_state(tensors, meta)
        data_rng.set_state(tensors["rng.data"])
        torch.set_rng_state(tensors["rng.torch"])
        start, elapsed_before = meta["step"] + 1, float(meta.get("seconds", 0.0))

    config = {
        "classes": list(dataset.names), "crop_size": cfg.crop_size, "channels": ts.channels,
        "context": cfg.context, "min_window": cfg.min_window, "profile": profile, "seed": cfg.seed,
        "versions": versions(), "networks": model.specs,
        "edge_maps": "filled mask of |defect - template| > threshold (paired), Canny in the hole (unpaired); "
                     "augment/edgemaps.py; an outlined defect without template: its outline, carrying its shading "
                     "when generator.outline_structure is shading (augment/outlines.py)",
        "background": "template crop (paired items), inpainted crop (unpaired)",
        "init": init_record,
        "weights_dtype": "float16" if cfg.fp16_export else "float32",
        "generator": config_dict(cfg),
        "dataset": {"root": str(Path(dataset.root).resolve()), "source": dataset.meta.get("source"),
                    "training_crops": ts.summary()},
        "sampler_stats": sampler_stats,
        "step": start - 1, "device": str(device),
    }
    ckpt.save_config(out, config)
    console.print(f"[bold]MIDG generator[/] profile={profile} device={device} crops={ts.summary()}")
    console.print("config: " + " ".join(f"{k}={v}" for k, v in config_dict(cfg).items()), highlight=False)

    preview = {k: v.cpu() for k, v in preview_batch(ts).items()}
    loss_names: list[str] | None = None
    metrics: MetricsLog | None = None
    sums: dict[str, torch.Tensor] = {}
    n_summed = 0
    last_losses: dict[str, float] = {}
    t0 = time.perf_counter()

    def seconds() -> float:
        return elapsed_before + time.perf_counter() - t0

    def save_state(step: int) -> None:
        tensors, meta = model.train_state()
        tensors["rng.data"] = data_rng.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta.update(step=step, seconds=round(seconds(), 3), config=config_dict(cfg))
        ckpt.save_train_state(out, tensors, meta)

    def save_samples(step: int) -> None:
        with torch.no_grad():
            res = model.forward_generators({k: v.to(device) for k, v in preview.items()},
                                           rng=torch.Generator().manual_seed(cfg.seed + 2), teacher_forcing=0.0)
        (out / "samples").mkdir(exist_ok=True)
        write_grid(out / "samples" / f"step_{step:06d}.png", training_grid(res, preview, dataset.names))

    columns = [TextColumn("[bold]generator"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[losses]}")]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("train", total=cfg.steps, completed=start - 1, losses="")
        for step in range(start, cfg.steps + 1):
            losses = model.step(sample_batch(ts, cfg.batch_size, data_rng))
            if loss_names is None:
                loss_names = list(losses)
                metrics = MetricsLog(out / METRICS_FILE, loss_names, keep_step=start - 1)
            for k, v in losses.items():
                sums[k] = sums[k] + v if k in sums else v
            n_summed += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                values = torch.stack([sums[k] for k in loss_names]).cpu().tolist()
                last_losses = {k: v / n_summed for k, v in zip(loss_names, values)}
                if not all(math.isfinite(v) for v in last_losses.values()):
                    raise TrainingDiverged(f"non-finite loss by step {step}, stopping: "
                                           + ", ".join(f"{k}={v:.4g}" for k, v in last_losses.items()))
                metrics.append(step, seconds(), last_losses)
                sums, n_summed = {}, 0
                progress.update(task, losses=_format_losses(last_losses))
            if cfg.sample_every and step % cfg.sample_every == 0:
                save_samples(step)
            if step % cfg.save_every == 0 and step != cfg.steps:
                save_state(step)
            progress.update(task, completed=step)

    final_step = max(cfg.steps, start - 1)
    if start <= cfg.steps:
        save_state(final_step)
        save_samples(final_step)
    dtype = torch.float16 if cfg.fp16_export else torch.float32
    ckpt.save_generator_weights(out, model.generator_state(dtype), final_step)
    config.update(step=final_step, train_seconds=round(seconds(), 2))
    ckpt.save_config(out, config)
    summary = {"step": final_step, "seconds": round(seconds(), 2), "device": str(device), "profile": profile,
               "seconds_per_step": round(seconds() / max(final_step, 1), 4), "final_losses": last_losses}
    atomic_write_json(out / "metrics.json", summary)
    console.print(f"[green]done[/]: {final_step} steps in {summary['seconds']:.1f} s → {out}")
    return summary
