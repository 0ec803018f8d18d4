"""`midg run`: the whole augment-and-evaluate job, one command, versioned by DVC.

    midg run --profile demo                         # procedural boards, 2 CPU cores, about 15 min
    midg run --profile smoke                        # seconds: the plumbing
    midg run --profile bench-cpu                    # DeepPCB at 320 px, yolov8n, N=100, 2 seeds (CPU)
    midg run --profile paper                        # DeepPCB, full size, 3 detectors x 3 seeds (GPU)
    midg run --profile demo --detectors yolov8n,yolov5nu --seeds 0,1
    midg run --profile demo --n-images 10 40        # a data-efficiency curve: the whole job at N = 10 and 40
    midg run --profile demo --data path/to/data.yaml [--normals path/to/good_images]
    midg run --profile smoke --no-dvc               # anywhere: the same stages in order, no DVC
    midg run --profile demo --executor ray          # independent stages side by side, as Ray tasks
    midg run --profile paper --executor ray --address auto   # ... on the cluster `ray start` made

It writes `profile:` and the `run:` line (the flags) into params.yaml, runs `dvc repro`
(only what changed since the last run reruns), shows one progress view across the
stages, and prints the result table (and, with several N, mAP50 against N); reports/report.html has the rest.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from midg.datasets.errors import ConfigError

out = Console()


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated integers, e.g. 0,1,2; got {text!r}") from None


def _n_list(values: list[str] | None, extra: list[str]) -> list[int] | None:
    """--n-images 10 40, --n-images 10,40 or --n-images 10 --n-images 40 -> [10, 40]."""
    if extra and not values:
        raise ConfigError(f"unexpected argument(s) {' '.join(extra)}: `midg run` takes options only "
                          "(N values go after --n-images, e.g. --n-images 10 40)")
    if values is None:
        return None
    tokens = [t for v in [*values, *extra] for t in v.split(",") if t.strip()]
    try:
        return [int(t) for t in tokens]
    except ValueError:
        raise ConfigError(f"--n-images takes whole numbers of annotated training images, e.g. --n-images 10 40; "
                          f"got {' '.join(tokens)!r}") from None


def _name_list(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",") if v.strip()]


def _project_path(path: Path | None, root: Path) -> str | None:
    """A path as params.yaml keeps it: relative to the project when inside it, else absolute."""
    if path is None:
        return None
    p = path.expanduser().resolve()
    if not p.exists():
        raise ConfigError(f"{path}: does not exist")
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def _installed_params() -> Path | None:
    """The project's params.yaml beside the installed package (an editable install or a clone)."""
    import midg

    p = Path(midg.__file__).resolve().parent / "params.yaml"
    return p if p.is_file() else None


def run_command(
    ctx: typer.Context,
    profile: Optional[str] = typer.Option(None, "--profile", "-p",
                                          help="smoke | demo | bench-cpu | paper (default: params.yaml's `profile:`)"),
    detectors: Optional[str] = typer.Option(None, help="Comma-separated detectors, e.g. yolov8n,yolov5nu,faster_rcnn "
                                                       "(default: the profile's)"),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated detector seeds, e.g. 0,1 (default: the profile's)"),
    n_images: Optional[List[str]] = typer.Option(None, "--n-images", help="N annotated training images (default: the "
                                                 "profile's data.subset_n); several, e.g. --n-images 10 40: the whole job "
                                                 "at each N and mAP against N in the report"),
    data: Optional[Path] = typer.Option(None, help="Your own dataset instead of the profile's: a canonical folder, an "
                                                  "ultralytics data.yaml or a COCO .json"),
    normals: Optional[Path] = typer.Option(None, help="A folder of defect-free images, for data without normals/"),
    params: Optional[Path] = typer.Option(None, help="params file (default: ./params.yaml)"),
    no_dvc: bool = typer.Option(False, "--no-dvc", help="Run the stages in order without DVC (no cache, no versions)"),
    executor: Optional[str] = typer.Option(None, "--executor", help="ray: run independent stages side by side as Ray "
                                                                   "tasks (pip install 'midg[ray]'); DVC still records them"),
    address: Optional[str] = typer.Option(None, "--address", help="with --executor ray: the cluster, auto or HOST:PORT "
                                                                 "(default: a Ray started for this run on this machine)"),
) -> None:
    """Run the whole job: prepare data, train the generator, generate, train and score the detectors, report."""
    from .runner import run_job

    root = Path.cwd().resolve()
    use_dvc = not no_dvc
    if use_dvc and not (root / "dvc.yaml").is_file():
        out.print(f"[yellow]note:[/] no dvc.yaml in {root}: running the stages without DVC (as --no-dvc)")
        use_dvc = False
    if params is None and not (root / "params.yaml").is_file():
        params = _installed_params()
        if params is None:
            raise ConfigError(f"no params.yaml in {root}: pass --params FILE")
        if not use_dvc:
            out.print(f"[dim]params: {params}[/]")
    overrides = {
        "detectors": _name_list(detectors),
        "seeds": _int_list(seeds, "--seeds"),
        "data": _project_path(data, root),
        "normals": _project_path(normals, root),
        "subset_n": _n_list(n_images, list(ctx.args)),
    }
    command = "midg " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["run"] else None
    result = run_job(root, profile=profile, overrides=overrides, params=params, use_dvc=use_dvc, command=command,
                     executor=executor, address=address)
    print_results(result.metrics)
    ran = [s for s in result.ran if s not in result.skipped]
    slow = sorted(result.timings.items(), key=lambda kv: -kv[1])[:5]
    if slow:
        out.print("slowest stages: " + ", ".join(f"{name} {sec:.0f} s" for name, sec in slow), highlight=False)
    out.print(f"profile [bold]{result.profile}[/]: {len(ran)} stage(s) ran, {len(result.skipped)} unchanged, "
              f"{result.seconds / 60:.1f} min. Report: [bold]{root / 'reports' / 'report.html'}[/]")


def print_results(metrics: dict) -> None:
    table = Table(title=f"COCO mAP on the real test split (profile {metrics.get('profile')})", show_lines=False)
    for col in ("detector", "condition", "mAP50", "mAP50-95", "gain50", "gain50-95", "n"):
        table.add_column(col, justify="left" if col in ("detector", "condition") else "right")
    for det, conds in metrics.get("results", {}).items():
        for cond, r in conds.items():
            gain = r.get("gain_map50")
            gain95 = r.get("gain_map50_95")
            table.add_row(det, cond, f"{r['map50']:.3f} ± {r['map50_std']:.3f}",
                          f"{r['map50_95']:.3f} ± {r['map50_95_std']:.3f}",
                          "" if gain is None else f"[{'green' if gain > 0 else 'red'}]{gain:+.3f}[/]",
                          "" if gain95 is None else f"{gain95:+.3f}", str(r["seeds"]))
    out.print(table)
    curve = metrics.get("curve")
    if curve:  # a job with several N: mAP50 per N, and each synthetic condition's paired gain
        table = Table(title="mAP50 against N (gain vs real: paired mean [95 % interval])", show_lines=False)
        table.add_column("detector", justify="left")
        table.add_column("condition", justify="left")
        for n in curve["n"]:
            table.add_column(f"N={n}", justify="right")
        for det, conds in curve["results"].items():
            for cond, rows in conds.items():
                cells = {r["n"]: f"{r['map50']:.3f}" + ("" if "gain_map50" not in r else f" ({r['gain_map50']:+.3f}"
                         + (f" [{r['gain_map50_ci'][0]:+.3f}, {r['gain_map50_ci'][1]:+.3f}]" if r["gain_map50_ci"] else "")
                         + ")") for r in rows}
                table.add_row(det, cond, *[cells.get(n, "") for n in curve["n"]])
        out.print(table)
