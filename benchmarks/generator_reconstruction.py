"""Does the defect module paint the defects it was trained on? A generator's own training
defects, repainted on their own filled surroundings from their own real structure (teacher
forced: no placement, deformation, compositing or new surface in the way), against the real
pixels. What it gets wrong here it gets wrong everywhere; what it gets right here and wrong
in a generated set comes from generation.

Per defect, on the structure's cover (grey in [0, 1]): the tones of the change against the
filled surface (quantiles: how dark, how spread), the edge contrast of the cover's outline
(augment/metrics/edge_contrast.py: a ring painted along the outline reads high) and the
detail energy at the detail loss' scales (augment/model.py: a hatching reads high, a smooth
blob low) and the texture loss' gradient energy along y over along x (model.texture_energy at
1 px, as a log ratio: 0 for a grain with no direction, high for a horizontal hatching). Medians over the defects, fake beside real, and a sheet: real | painted |
surface it was painted on | structure.

    python benchmarks/generator_reconstruction.py --checkpoint WORK/n50/s0/generator \\
        --real WORK/n50/s0/real --out R.json --sheet R.png
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_steps import git_dirty, git_rev  # noqa: E402

TONE_QUANTILES = (0.02, 0.25, 0.5, 0.75, 0.98)
MIN_COVER_PX = 16  # smaller covers have no inside to speak of


def pit_scores(real: np.ndarray, fake: np.ndarray, surface: np.ndarray, cover: np.ndarray) -> dict[str, Any] | None:
    """One defect: HxW grey real, fake and surface in [0, 1], HxW cover (bool). None: too small."""
    from midg.augment.metrics.edge_contrast import edge_contrast

    inside = np.asarray(cover) > 0
    if inside.sum() < MIN_COVER_PX:
        return None
    out: dict[str, Any] = {}
    for name, grey in (("real", real), ("fake", fake)):
        change = (grey - surface)[inside]
        out[name] = {"tones": [float(v) for v in np.quantile(change, TONE_QUANTILES)],
                     "change_sd": float(change.std()),
                     "edge_contrast": edge_contrast(grey, inside),
                     "detail": [detail_energy(grey, inside, s) for s in (3, 7)],
                     "stripe_log_ratio": stripe_log_ratio(grey, inside)}
    return out


def _torch_pair(grey: np.ndarray, region: np.ndarray):
    import torch

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]  # noqa: E731
    return t(grey), t(region)


def stripe_log_ratio(grey: np.ndarray, region: np.ndarray) -> float:
    """log(gradient energy along y / along x) at 1 px (augment/model.py's texture_energy)."""
    from midg.augment.model import texture_energy

    energy = texture_energy(*_torch_pair(grey, region))[0]
    return float(np.log(max(float(energy[1]), 1e-6) / max(float(energy[0]), 1e-6)))


def detail_energy(grey: np.ndarray, region: np.ndarray, size: int) -> float:
    """augment/model.py's detail_energy (what the detail loss compares) on one grey crop."""
    from midg.augment.model import detail_energy as energy

    return float(energy(*_torch_pair(grey, region), size)[0, 0])


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the defects per side; edge contrast as the mean log (edge_contrast.summarise)."""
    out: dict[str, Any] = {"n": len(rows)}
    for side in ("real", "fake"):
        tones = np.array([r[side]["tones"] for r in rows])
        edges = [r[side]["edge_contrast"] for r in rows if r[side]["edge_contrast"]]
        out[side] = {"tones_median": dict(zip([str(q) for q in TONE_QUANTILES], np.median(tones, 0).round(4).tolist())),
                     "change_sd_median": round(float(np.median([r[side]["change_sd"] for r in rows])), 4),
                     "edge_contrast_mean_log": round(float(np.mean(np.log(edges))), 4) if edges else None,
                     "detail_median": np.median([r[side]["detail"] for r in rows], 0).round(4).tolist(),
                     "stripe_log_ratio_median": round(float(np.median([r[side].get("stripe_log_ratio", np.nan)
                                                                       for r in rows])), 4)}
    return out


def reconstruct(checkpoint: Path, real: Path, device: str = "cpu") -> dict[str, np.ndarray]:
    """The defect module on every training defect of `real` that has a surface to paint on
    (a template, or the outline filled in: paired in the checkpoint's training set, rebuilt
    with its config), from the real structure, on that surface, as training painted."""
    import torch

    from midg.augment.checkpoint import load_checkpoint_config, load_generator
    from midg.augment.config import config_from_dict
    from midg.augment.trainset import build_training_set
    from midg.datasets.layout import load_dataset

    conf = load_checkpoint_config(checkpoint)
    ts = build_training_set(load_dataset(real), config_from_dict(conf["generator"]))
    gen = load_generator(checkpoint, device)
    keep = ts.paired > 0.5
    if not bool(keep.any()):
        raise SystemExit(f"{real}: no training defect has a surface to paint on (no templates, no outlines)")
    with torch.no_grad():
        hole = ts.hole[keep]
        image, edges = ts.image[keep], ts.edges[keep]
        surface = image * (1 - hole) + ts.background[keep] * hole
        painted = gen.nets["defect"](inpainted=surface.to(device), edges=edges.to(device), hole=hole.to(device),
                                     class_ids=ts.class_ids[keep].to(device)).cpu()
        painted = painted * hole + surface * (1 - hole)
    return {"real": image.numpy(), "fake": painted.numpy(), "surface": surface.numpy(),
            "cover": (edges[:, 0] > 0.5).numpy(), "structure": edges[:, 0].numpy()}


def sheet(rec: dict[str, np.ndarray], out: Path, n: int = 10, zoom: float = 2.5) -> None:
    """real | painted | surface | structure, one column per defect (the largest covers first)."""
    import cv2

    order = np.argsort([-c.sum() for c in rec["cover"]])[:n]
    rgb = lambda a: (np.clip(a.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)  # noqa: E731
    grey = lambda a: np.repeat((np.clip(a, 0, 1) * 255).astype(np.uint8)[..., None], 3, 2)  # noqa: E731
    rows = [np.concatenate([rgb(rec[k][i]) for i in order], 1) for k in ("real", "fake", "surface")]
    rows.append(np.concatenate([grey(rec["structure"][i]) for i in order], 1))
    img = np.concatenate(rows, 0)
    img = cv2.resize(img, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    tmp = out.with_name(out.stem + ".tmp.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    tmp.replace(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a trained generator folder")
    ap.add_argument("--real", required=True, help="the dataset it was trained on (its train split)")
    ap.add_argument("--out", required=True, help="JSON")
    ap.add_argument("--sheet", help="PNG: real | painted | surface | structure")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    for need in (Path(args.checkpoint), Path(args.real)):
        if not need.is_dir():
            raise SystemExit(f"{need}: not a folder")
    from midg.augment.checkpoint import load_checkpoint_config

    t0 = time.time()
    rec = reconstruct(Path(args.checkpoint), Path(args.real), args.device)
    g = lambda a: a.mean(axis=0)  # noqa: E731
    rows = [r for i in range(len(rec["cover"]))
            if (r := pit_scores(g(rec["real"][i]), g(rec["fake"][i]), g(rec["surface"][i]), rec["cover"][i]))]
    result = {"what": "the defect module on its own training defects, teacher forced, against the real pixels",
              "summary": summarise(rows) if rows else {"n": 0},
              "checkpoint": args.checkpoint, "real": args.real,
              # which losses trained it: the folder's path alone does not say, and folders go
              "generator": load_checkpoint_config(Path(args.checkpoint))["generator"],
              "command": "python benchmarks/generator_reconstruction.py " + shlex.join(sys.argv[1:]),
              "device": args.device, "date": dt.date.today().isoformat(), "git_rev": git_rev(),
              "git_dirty": git_dirty(), "seconds": round(time.time() - t0, 1)}
    out = Path(args.out)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    if args.sheet:
        sheet(rec, Path(args.sheet))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
