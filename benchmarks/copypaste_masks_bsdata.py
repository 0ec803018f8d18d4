"""Copy-paste on BSData, old (the whole box, feathered) vs new (the defect's own polygon
mask), scored by `midg evaluate-generator`: a quick, seeded look, not the full protocol.

    PYTHONPATH=... python benchmarks/copypaste_masks_bsdata.py [--bsdata ../shared/datasets/BSData] \\
        [--work data/bsdata_quick] [--n-train 50] [--n-normals 40] [--n-images 150] [--seed 0]

1. A small canonical dataset under --work (git-ignored; BSData is CC BY-SA and never
   committed): N annotated type-2 train images of the authors' split (seeded), their type-2
   test images, and N_NORMALS defect-free photos from before pitting began in their wear
   sequence (SOURCE.md), all 1130x460. LabelMe polygons are kept in meta.json as
   `midg data import labelme` keeps them, so the library finds each pit's own mask.
2. One library from the train images; "old" is the same library with its `masked` flags
   cleared, which is exactly the behaviour before masks were kept (an unpaired entry
   pastes its whole box, feathered; Poisson blends the whole rectangle).
3. copy-paste and Poisson, old and new, the same normals, seed and rectangles; then
   evaluate-generator on all four against the real set.
Writes benchmarks/results/copypaste_masks_bsdata.json (command, device, date, git revision).
(Another benchmark, benchmarks/bsdata.py, prepares the protocol's splits; this one only
needs a quick set.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZE = (1130, 460)  # the type-2 images most of BSData holds


def git_revision() -> str:
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return rev + ("-dirty" if dirty else "")


def normals_before_onset(images: list[dict]) -> list[dict]:
    """Unannotated images that come before the first annotated image of their wear sequence."""
    onset: dict[str, str] = {}
    for im in images:
        if im.get("annotations"):
            for seq in im.get("wear_dev") or []:
                stamp = im["filename"].split("_")[1]
                onset[seq] = min(onset.get(seq, stamp), stamp)
    out = []
    for im in images:
        if im.get("annotations"):
            continue
        stamp = im["filename"].split("_")[1]
        seqs = im.get("wear_dev") or []
        if seqs and all(stamp < onset.get(seq, "99999999999999") for seq in seqs):
            out.append(im)
    return out


def prepare(bsdata: Path, work: Path, n_train: int, n_normals: int, seed: int) -> Path:
    from PIL import Image

    from midg.datasets.labelme import read_labelme, shape_box
    from midg.datasets.layout import DatasetWriter

    out = work / "real"
    if (out / "meta.json").is_file():
        return out
    images = json.loads((bsdata / "image_data.json").read_text())["images"]

    def size_ok(im: dict) -> bool:
        with Image.open(bsdata / "data" / im["filename"]) as f:
            return f.size == SIZE

    typed = [im for im in images if im.get("type") == 2]
    train = sorted((im for im in typed if im.get("train_test_split") == "train" and size_ok(im)), key=lambda i: i["filename"])
    test = sorted((im for im in typed if im.get("train_test_split") == "test" and size_ok(im)), key=lambda i: i["filename"])
    normals = sorted((im for im in normals_before_onset(typed) if size_ok(im)), key=lambda i: i["filename"])
    rng = random.Random(seed)
    train, normals = rng.sample(train, min(n_train, len(train))), rng.sample(normals, min(n_normals, len(normals)))
    provenance = {}
    with DatasetWriter(out, ["pitting"], source="bsdata-quick", seed=seed,
                       params={"n_train": n_train, "n_normals": n_normals, "size": list(SIZE)}) as w:
        for split, chosen in (("train", train), ("test", test)):
            for im in sorted(chosen, key=lambda i: i["filename"]):
                doc = read_labelme(bsdata / "label" / im["annotations"])
                boxes = [shape_box(s, 0, *SIZE) for s in doc["shapes"]]
                rel = w.add_image(split, im["filename"], src=bsdata / "data" / im["filename"],
                                  boxes=[b for b in boxes if b is not None])
                provenance[rel] = {"json": f"label/{im['annotations']}",
                                   "polygons": [{"label": "pitting", "points": s["points"]} for s in doc["shapes"]
                                                if s.get("shape_type", "polygon") == "polygon"]}
        for im in normals:
            w.add_normal(im["filename"], src=bsdata / "data" / im["filename"])
        w.update_meta(provenance={"root": str(bsdata), "files": provenance})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bsdata", type=Path, default=REPO.parent / "shared" / "datasets" / "BSData")
    ap.add_argument("--work", type=Path, default=REPO / "data" / "bsdata_quick")
    ap.add_argument("--n-train", type=int, default=50)
    ap.add_argument("--n-normals", type=int, default=40)
    ap.add_argument("--n-images", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "copypaste_masks_bsdata.json")
    args = ap.parse_args()
    import torch

    from midg.augment.generate import generate_dataset
    from midg.augment.library import LIBRARY_FILE, load_library, write_library_folder
    from midg.augment.metrics.evaluate import EvalConfig, evaluate_generator
    from midg.datasets.layout import load_dataset

    started, revision = time.time(), git_revision()  # the code that runs is the code at the start
    real = load_dataset(prepare(args.bsdata, args.work, args.n_train, args.n_normals, args.seed))
    new_lib, old_lib = args.work / "lib_mask", args.work / "lib_box"
    if not (new_lib / "config.json").is_file():
        write_library_folder(real, new_lib, crop_size=64)
    if not (old_lib / "config.json").is_file():
        from safetensors import safe_open
        from safetensors.numpy import load_file, save

        old_lib.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "stats.json"):
            (old_lib / name).write_bytes((new_lib / name).read_bytes())
        with safe_open(str(new_lib / LIBRARY_FILE), framework="np") as fh:
            metadata = fh.metadata()
        arrays = load_file(str(new_lib / LIBRARY_FILE))
        arrays["masked"] = np.zeros_like(arrays["masked"])
        (old_lib / LIBRARY_FILE).write_bytes(save(arrays, metadata=metadata))
    lib = load_library(new_lib)
    sets = {}
    for method in ("copypaste", "poisson"):
        for tag, ckpt in (("box", old_lib), ("mask", new_lib)):
            out = args.work / f"syn_{method}_{tag}"
            if not (out / "meta.json").is_file():
                generate_dataset(ckpt, real.root / "normals", out, n_images=args.n_images, seed=args.seed, method=method,
                                 progress=False)
            sets[f"{method}_{tag}"] = out
    gen_s = time.time() - started
    metrics_path = args.work / "metrics" / "metrics.json"
    metrics = evaluate_generator(real.root, list(sets.values()), metrics_path, cfg=EvalConfig(), seed=args.seed,
                                 threads=1, show_progress=False)
    keys = ("c2st", "fd", "fd_std", "kid", "seam", "box_fidelity", "crops")
    result = {
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
        "what": "copy-paste baselines on BSData (one class, no templates): the whole box feathered (box) vs the "
                "defect's own polygon mask (mask), copy-paste and Poisson; midg evaluate-generator, EvalConfig defaults",
        "device": "cpu (2 cores, shared with other jobs), torch threads 1",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_revision": revision,
        "seed": args.seed,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "data": {"source": str(args.bsdata), "image_size": list(SIZE), "n_train_images": args.n_train,
                 "n_normals": args.n_normals, "real_crops": metrics["real"]["crops"],
                 "library_entries": len(lib), "library_masked": int(lib.masked.sum()),
                 "n_images_per_set": args.n_images},
        "omitted": metrics["omitted"],
        "feature_space": metrics["feature_space"],
        "reference": {k: metrics["reference"].get(k) for k in ("c2st", "fd", "fd_std", "kid", "seam")},
        "methods": {name: {k: m.get(k) for k in keys} for name, m in metrics["methods"].items()},
        "seconds": {"prepare_and_generate": round(gen_s, 1), "total": round(time.time() - started, 1)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("reference", "methods")}, indent=1)[:4000])


if __name__ == "__main__":
    main()
