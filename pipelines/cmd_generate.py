"""`midg generate`: paint defects into normal images with MIDG or the copy-paste baseline.

    midg generate --checkpoint runs/gen --normals data/real --out data/synth --n-images 500 --seed 0
    midg generate --checkpoint runs/library --method copypaste --normals data/real --out data/cp --n-images 500 --seed 0
    midg generate ... --shape square.png          # the shape becomes every defect's outline
    midg generate ... --edges library             # real defect edges, flipped/rotated/rescaled
    midg generate ... --box-style rect        # label = the rectangle painted into (loose, like DeepPCB's annotators)
    midg generate ... --placement matched --edges library   # real structures where the normal's traces fit them
    midg generate ... --layout layout.json        # {normal file: [{"rect": [x1,y1,x2,y2], "class": name}]}
    midg generate ... --shard 0/4                 # images k = 0 mod 4; `midg data merge` the shards
    midg generate ... --executor ray --shards 4   # 4 shards as Ray tasks, merged into --out
    midg generate --profile demo --checkpoint ... --normals ... --out ...   # defaults from params.yaml

Flags win over the profile's `generate:` section of params.yaml; without --profile the
built-in defaults are used (GenerateConfig in augment/generate_config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from midg.datasets.errors import ConfigError

console = Console(stderr=True)


def generate_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="MIDG checkpoint folder, or a library folder (copypaste, poisson)"),
    normals: Path = typer.Option(..., "--normals", help="folder of defect-free images, or a canonical dataset (its normals/)"),
    out: Path = typer.Option(..., "--out", help="output dataset folder (written aside, moved into place)"),
    n_images: Optional[int] = typer.Option(None, "--n-images", help="synthetic images, all shards together"),
    seed: Optional[int] = typer.Option(None, "--seed", help="image k uses rng [seed, k]"),
    method: Optional[str] = typer.Option(None, "--method", help="midg | copypaste | poisson (copy-paste, Poisson-blended)"),
    classes: Optional[str] = typer.Option(None, "--classes", help="comma-separated class names (default: all with real examples)"),
    defects_per_image: Optional[str] = typer.Option(None, "--defects-per-image", help="LO-HI, e.g. 1-3, or auto: the real images' counts (default)"),
    shape: Optional[Path] = typer.Option(None, "--shape", help="binary PNG: the outline of every defect (MIDG only)"),
    edges: Optional[str] = typer.Option(None, "--edges", help="auto (default: library when the checkpoint has "
                                        "one, else generated) | generated | library (MIDG edge source)"),
    box_style: Optional[str] = typer.Option(None, "--box-style", help="learned (tight change + the class's learned "
                                                                      "margin) | rect (the painted rectangle) | tight"),
    placement: Optional[str] = typer.Option(None, "--placement", help="auto (default: matched for MIDG when the "
                                                                      "library is paired, surface when the real "
                                                                      "defects had no templates, else conductor) | "
                                                                      "conductor (a typical share of conductor) | "
                                                                      "matched (where the traces match a real defect's "
                                                                      "surface) | surface (where the surface looks like "
                                                                      "the real defects' surroundings)"),
    canvas: Optional[str] = typer.Option(None, "--canvas", help="auto (default: annotated when --normals is a "
                                         "dataset with annotated training images, else normals) | normals | annotated "
                                         "(paint into the annotated training images, real labels kept) | both"),
    canvas_share: Optional[float] = typer.Option(None, "--canvas-share", help="with --canvas both: the share of "
                                                 "images painted into annotated images (default 0.5)"),
    class_mix: Optional[str] = typer.Option(None, "--class-mix", help="real (default: the real class counts) | "
                                            "uniform | a YAML/JSON file of class: weight"),
    layout: Optional[Path] = typer.Option(None, "--layout", help="JSON of rectangles per normal file (replaces sampling)"),
    shard: str = typer.Option("0/1", "--shard", help="I/N: make only images k = I mod N"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="crops per forward pass"),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (1 is fastest for these small nets on busy cores)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="take defaults from params.yaml profiles.<profile>.generate"),
    params_file: Optional[Path] = typer.Option(None, "--params", help="params file for --profile "
                                                                       "(default: ./params.yaml, else the built-in one)"),
    executor: Optional[str] = typer.Option(None, "--executor", help="ray: run --shards shards as Ray tasks and merge "
                                                                   "them into --out (pip install 'midg[ray]')"),
    shards: Optional[int] = typer.Option(None, "--shards", help="with --executor ray: how many shards (tasks)"),
    address: Optional[str] = typer.Option(None, "--address", help="with --executor ray: the cluster, auto or HOST:PORT "
                                                                 "(default: a Ray started for this command)"),
) -> None:
    """Paint defects into normal images and label them (MIDG or copy-paste)."""
    from midg.augment.openmp import sleep_idle_openmp_threads

    sleep_idle_openmp_threads()  # before torch first loads (augment/openmp.py)
    from midg.augment.generate import generate_dataset, parse_range, parse_shard
    from midg.augment.generate_config import generate_config
    from midg.datasets.params import as_dict, find_params, load_params

    if shape is not None and edges not in (None, "shape"):
        raise ConfigError("give --shape or --edges, not both (a shape is an edge source)")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    if class_mix is not None and Path(class_mix).is_file():
        class_mix = str(Path(class_mix).resolve())  # a file: the same one for every shard and task
    params = None
    if profile is not None:
        params_file = find_params(params_file)
        console.print(f"params: {params_file.resolve()} (profile {profile})", highlight=False)
        params = load_params(params_file)
    cfg = generate_config(
        params, profile, n_images=n_images, seed=seed, method=method,
        classes=[c.strip() for c in classes.split(",") if c.strip()] if classes is not None else None,
        defects_per_image=parse_range(defects_per_image) if defects_per_image is not None else None,
        edges=edges, batch_size=batch_size, box_style=box_style, placement=placement, canvas=canvas,
        canvas_share=canvas_share, class_mix=class_mix)
    i, n = parse_shard(shard)
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    if executor is not None or shards is not None or address is not None:
        return _generate_on_ray(locals(), cfg, (i, n))
    import torch

    # The generator's nets are small: on 2 shared cores 2 threads ran ~10x slower than 1.
    # Byte-identical reruns on CPU assume the same thread count (the default, 1).
    torch.set_num_threads(threads)
    console.print(f"[bold]generate[/] {as_dict(cfg)} shard={i}/{n} device={device}", highlight=False)
    ds = generate_dataset(
        checkpoint, normals, out, n_images=cfg.n_images, seed=cfg.seed, method=cfg.method, classes=cfg.classes,
        defects_per_image=cfg.defects_per_image, shape=shape,
        edges=cfg.edges, shard=(i, n), layout=layout,
        device=device, batch_size=cfg.batch_size, progress=True, config=cfg)
    train = ds.counts()["train"]
    console.print(f"[green]wrote[/] {out}: {train['images']} images, {train['boxes']} boxes, "
                  f"{ds.meta.get('dropped', 0)} defects dropped (changed too little)", highlight=False)


def _generate_on_ray(opts: dict, cfg, shard: tuple[int, int]) -> None:
    """The same command once per shard, each a Ray task; merged into --out (ray_executor.py)."""
    if opts["executor"] != "ray":
        raise ConfigError(f"--executor must be ray (or left out: one process), got {opts['executor']!r}")
    if opts["shards"] is None or opts["shards"] < 1:
        raise ConfigError(f"--executor ray needs --shards N with N >= 1, got {opts['shards']}")
    if shard != (0, 1):
        raise ConfigError("give --shard I/N (one shard, this process) or --executor ray --shards N, not both")
    from .ray_executor import check_address, generate_shards_on_ray, import_ray

    import_ray()
    check_address(opts["address"])
    args = ["--checkpoint", str(opts["checkpoint"]), "--normals", str(Path(opts["normals"]).resolve()),
            "--n-images", str(cfg.n_images), "--seed", str(cfg.seed), "--method", cfg.method,
            "--device", opts["device"], "--threads", str(opts["threads"])]
    for flag, key in (("--classes", "classes"), ("--defects-per-image", "defects_per_image"), ("--shape", "shape"),
                      ("--edges", "edges"), ("--box-style", "box_style"), ("--placement", "placement"),
                      ("--canvas", "canvas"), ("--canvas-share", "canvas_share"), ("--class-mix", "class_mix"),
                      ("--layout", "layout"), ("--batch-size", "batch_size"),
                      ("--profile", "profile"), ("--params", "params_file")):
        if opts[key] is not None:
            value = opts[key]
            args += [flag, str(Path(value).resolve()) if isinstance(value, Path) else str(value)]
    resources = {"num_gpus": 1, "num_cpus": 1} if opts["device"] == "cuda" else {"num_cpus": opts["threads"]}
    records = generate_shards_on_ray(args, Path(opts["out"]), opts["shards"], address=opts["address"],
                                     resources=resources)
    hosts = sorted({str(r.get("host")) for r in records})
    console.print(f"[green]wrote[/] {opts['out']}: {opts['shards']} shards merged (ran on {', '.join(hosts)})",
                  highlight=False)
