"""The unpaired photo path (outline-annotated defects, normals, no templates), on a small
constructed textured colour set (tests/photo_builders.py):
- training crops: the defect module paints on the real surroundings (the pits filled by
  OpenCV inpainting, a pseudo-template), its structure is the annotated outline, and the
  inpainting block's self-supervised holes are deformed real outlines, not rectangles;
- train -> generate end to end: every changed pixel lies in its label box, and the change
  follows a (deformed) real outline rather than filling its rectangle.

    .venv/bin/python -m pytest tests/test_photo_generator.py -x -q
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midg.augment.config import GeneratorConfig
from midg.augment.generate import generate_dataset
from midg.augment.generate_config import GenerateConfig
from midg.augment.trainset import build_training_set
from midg.datasets.images import read_image
from midg.datasets.layout import load_dataset
from photo_builders import write_photo_set

SMALL = dict(crop_size=32, min_window=16, base_channels=8, disc_channels=8, disc_layers=2, res_blocks=1,
             batch_size=4, self_supervised=24, log_every=5, sample_every=0, save_every=10, threads=1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_photo_set(tmp_path_factory.mktemp("photo") / "set")


def test_training_crops_paint_on_the_real_surroundings_with_the_outline(photos):
    ds = load_dataset(photos)
    ts = build_training_set(ds, GeneratorConfig(**SMALL))
    assert ts.paired.eq(1).all()  # every defect has its pseudo-template
    assert ts.n_paired == 0  # ... which is never an inpainting target
    hole, edges = ts.hole, ts.edges
    assert (edges * (1 - hole)).sum() == 0
    share = (edges.sum(dim=(1, 2, 3)) / hole.sum(dim=(1, 2, 3)))
    assert (share > 0.3).all() and (share < 0.95).all()  # an outline inside its box, not the box
    # the pseudo-template is the image outside the pit and brighter inside it (the dark pit filled)
    gray = lambda t: t.mean(dim=1, keepdim=True)  # noqa: E731
    inside = ((gray(ts.background) - gray(ts.image)) * edges).sum() / edges.sum()
    far = 1 - torch.nn.functional.max_pool2d(edges, 7, stride=1, padding=3)  # the crop past the grown outline
    away = (gray(ts.background) - gray(ts.image)).abs() * far
    assert inside > 0.15 and away.sum() / far.sum() < 0.01, float(away.sum() / far.sum())
    # self-supervised holes: real outlines deformed, so they do not fill their extent
    fills = []
    for h in ts.inp_hole:
        ys, xs = np.nonzero(h[0].numpy() > 0.5)
        fills.append(len(ys) / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))
    assert np.mean(fills) < 0.9 and min(fills) < 0.8  # (a rectangle fills 1.0)


def test_outline_structure_carries_the_pits_shading_or_the_filled_outline(photos):
    ds = load_dataset(photos)
    shaded = build_training_set(ds, GeneratorConfig(**SMALL))  # the default: shading
    filled = build_training_set(ds, GeneratorConfig(**SMALL, outline_structure="filled"))
    assert set(torch.unique(filled.edges).tolist()) <= {0.0, 1.0}
    inside = filled.edges > 0.5
    # the same outline (> 0.5 wherever the filled one is 1, but its blurred rim), now graded by the pit's darkness
    assert ((shaded.edges > 0.5) == inside).float().mean() > 0.97
    values = shaded.edges[inside]
    assert values.std() > 0.02 and values.quantile(0.05) >= 0.5  # (the resized rim blends with the outside)
    gray = lambda t: t.mean(dim=1, keepdim=True)  # noqa: E731
    darker = (gray(shaded.background) - gray(shaded.image))[inside]
    assert np.corrcoef(values.numpy(), darker.numpy())[0, 1] > 0.5  # darker pixels, higher structure


def test_train_then_generate_keeps_the_change_in_a_real_shape(photos, tmp_path):
    from midg.augment.train import train_generator

    cfg = GeneratorConfig(**SMALL, steps=10, seed=0)
    train_generator(photos, tmp_path / "gen", cfg, profile="test")
    normals_canvas = GenerateConfig(canvas="normals")  # the defect-free photos (auto would take the annotated ones)
    out = generate_dataset(tmp_path / "gen", photos, tmp_path / "syn", n_images=6, seed=1, method="midg",
                           edges="library", batch_size=8, config=normals_canvas)
    normals = {Path(n).name: read_image(photos / n).astype(np.int16) for n in load_dataset(photos).normals}
    by_image = {}
    for d in out.meta["defects"]:
        by_image.setdefault(d["image"], d["normal"])
    fill = []
    for e in out.images("train"):
        img = read_image(out.path(e.file)).astype(np.int16)
        diff = np.abs(img - normals[Path(by_image[e.file]).name]).max(axis=2)
        inside = np.zeros(diff.shape, bool)
        for b in e.boxes:
            sl = np.s_[int(np.floor(b.y1)):int(np.ceil(b.y2)), int(np.floor(b.x1)):int(np.ceil(b.x2))]
            inside[sl] = True
            fill.append((diff[sl] > 0).mean())
        assert not diff[~inside].any(), e.file
        for d in out.meta["defects"]:  # each rectangle keeps a ring of untouched surface (the PAD inset)
            if d["image"] == e.file:
                x1, y1, x2, y2 = (int(v) for v in d["rect"])
                ring = np.ones((y2 - y1, x2 - x1), bool)
                ring[1:-1, 1:-1] = False
                assert not diff[y1:y2, x1:x2][ring].any(), (e.file, d["rect"])
    assert fill and np.median(fill) < 0.95  # shaped changes, not painted rectangles
    # same seed, same bytes
    again = generate_dataset(tmp_path / "gen", photos, tmp_path / "syn2", n_images=6, seed=1, method="midg",
                             edges="library", batch_size=8, config=normals_canvas)
    for e, f in zip(out.images("train"), again.images("train")):
        assert out.path(e.file).read_bytes() == again.path(f.file).read_bytes()
    # off a two-level surface (these stripes are one: levels off, as on BSData's photographs) the
    # feathered edge (the default) against the hard mask: the same defects, softer edges
    from midg.augment.metrics.edge_contrast import synthetic_edge_contrast

    def painted(name: str, feather: int):
        return generate_dataset(tmp_path / "gen", photos, tmp_path / name, n_images=6, seed=1, method="midg",
                                edges="library", batch_size=8,
                                config=GenerateConfig(canvas="normals", levels="off", edge_feather=feather))

    canvases = load_dataset(photos)
    # colour surface: the same changes in brightness, the canvas' hue kept wherever a pixel changed
    own_rgb = generate_dataset(tmp_path / "gen", photos, tmp_path / "rgb", n_images=6, seed=1, method="midg",
                               edges="library", batch_size=8, config=GenerateConfig(canvas="normals", levels="off"))
    hue_kept = generate_dataset(tmp_path / "gen", photos, tmp_path / "hue", n_images=6, seed=1, method="midg",
                                edges="library", batch_size=8,
                                config=GenerateConfig(canvas="normals", levels="off", colour="surface"))
    assert hue_kept.meta["params"]["colour"] == "surface"
    drift, by_name = {}, {Path(n).name: n for n in canvases.normals}
    for name, ds in (("painted", own_rgb), ("surface", hue_kept)):
        errs = []
        for e in ds.images("train"):
            normal = Path(next(d["normal"] for d in ds.meta["defects"] if d["image"] == e.file)).name
            before = read_image(canvases.path(by_name[normal])).astype(float)
            after = read_image(ds.path(e.file)).astype(float)
            moved = np.abs(after - before).max(axis=2) > 24
            chroma = lambda a: a[moved] / (a[moved].sum(axis=1, keepdims=True) + 1.0)  # noqa: E731
            if moved.any():
                errs.append(np.abs(chroma(after) - chroma(before)).max(axis=1))
        drift[name] = float(np.median(np.concatenate(errs)))
    assert drift["surface"] < 0.02 < drift["painted"], drift
    soft_edges = synthetic_edge_contrast(painted("soft", 3), canvases)
    hard_edges = synthetic_edge_contrast(painted("hard", 0), canvases)
    assert soft_edges["n"] > 0 and hard_edges["n"] > 0
    assert soft_edges["mean_log"] < hard_edges["mean_log"] - 0.05, (soft_edges, hard_edges)


def test_inpainting_benchmark_scores_every_method_and_catches_a_flat_fill(tmp_path):
    """benchmarks/photo_inpaint.py on a smoke checkpoint: real-outline holes on the val
    images, every method scored; the flat fill (the hole's border mean) shows as missing
    texture (its std error is the truth's whole std) and OpenCV's fill has less of it."""
    import json
    import subprocess
    import sys

    from midg.augment.train import train_generator

    photos = write_photo_set(tmp_path / "set", n_val=4)
    train_generator(photos, tmp_path / "gen", GeneratorConfig(**SMALL, steps=4, seed=0), profile="test")
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "inpaint.json"
    subprocess.run([sys.executable, str(root / "benchmarks/photo_inpaint.py"), "--checkpoint", str(tmp_path / "gen"),
                    "--real", str(photos), "--out", str(out), "--sheet", str(tmp_path / "sheet.png"),
                    "--per-image", "2"], check=True, capture_output=True)
    rec = json.loads(out.read_text())
    assert rec["holes"] == 8 and set(rec["per_method"]) == {"midg", "telea", "ns", "flat"}
    pm = rec["per_method"]
    assert all(np.isfinite(v) for m in pm.values() for v in m.values())
    assert pm["flat"]["std_error"] > pm["telea"]["std_error"] > 0
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_reconstruction_benchmark_repaints_the_training_pits_on_their_filled_surroundings(photos, tmp_path):
    """benchmarks/generator_reconstruction.py on a smoke checkpoint: every training pit
    (outlined, so paired with its filled surroundings) is repainted from its own outline;
    outside the hole the output is that surface exactly, and each side gets its scores."""
    import sys

    from midg.augment.train import train_generator

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import generator_reconstruction as gr

    train_generator(photos, tmp_path / "gen", GeneratorConfig(**SMALL, steps=4, seed=0), profile="test")
    rec = gr.reconstruct(tmp_path / "gen", photos)
    ts = build_training_set(load_dataset(photos), GeneratorConfig(**SMALL))
    assert len(rec["real"]) == int((ts.paired > 0.5).sum()) > 0
    hole = ts.hole[ts.paired > 0.5].numpy() > 0.5
    assert np.array_equal(rec["fake"] * ~hole, rec["surface"] * ~hole)  # nothing painted off the hole
    assert np.array_equal(rec["real"] * ~hole, rec["surface"] * ~hole)  # the surface is the real image there
    assert not np.array_equal(rec["fake"], rec["surface"])  # and something painted in it
    rows = [r for i in range(len(rec["real"])) if (r := gr.pit_scores(rec["real"][i].mean(0), rec["fake"][i].mean(0),
                                                                        rec["surface"][i].mean(0), rec["cover"][i]))]
    assert rows and set(gr.summarise(rows)) == {"n", "real", "fake"}
    gr.sheet(rec, tmp_path / "sheet.png", n=3)
    assert (tmp_path / "sheet.png").stat().st_size > 0
