"""`midg evaluate-generator`: every generator metric for any number of synthetic sets,
against the same real data, written to metrics.json (and metrics.png beside it).

    midg evaluate-generator --real data/demo --synthetic data/syn_midg --synthetic data/syn_copypaste \\
        --out runs/genmetrics/metrics.json --seed 0 [--checkpoint runs/generator/best --device cpu]

Roles of the real crops: the reference CNN trains on the real train (and val) crops, and
is scored on the real test crops (CAS reference). Synthetic CNNs are scored on the same
test crops (CAS). FD, KID and diversity compare features of the real test crops with the
synthetic crops. C2ST uses every real defect, but through its own crops (`c2st_crops` in
metrics.json): the whole painted rectangle plus a margin at native resolution, where a
generator's tells (its rectangle's border) are; see crops.native_crop. The "reference"
entry of metrics.json holds the same metrics for real data against real data: the floor
(or ceiling) to read the synthetic numbers against. See docs/generator_metrics.md.
"""

from __future__ import annotations

import dataclasses
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from midg.datasets.atomic import atomic_write_bytes, atomic_write_json
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.layout import Dataset, load_dataset, tool_version

from ..boxes import MIN_COMPONENT_PX, THRESHOLD
from .c2st import classifier_two_sample_test
from .cas import classification_accuracy_score
from .classifier import ClassifierConfig, embed, train_classifier
from .crops import (C2ST_CROP_RULE, CROP_FORMAT, CropSet, NativeCropConfig, cap_per_class, carried_boxes, concat,
                    dataset_channels, defect_crops, empty_cropset, native_defect_crops, rect_box_ratio,
                    stratified_halves, surface_crops, template_defect_crops)
from .diversity import mean_pairwise_distance, pixel_features
from .edge_contrast import edge_gap, real_edge_contrast, synthetic_edge_contrast, within_real_bracket
from .fidelity import (box_fidelity, defect_rects, inpainting_fidelity, opencv_inpainter, pair_box_fidelity,
                       shape_fidelity)
from .figure import plot_metrics
from .frechet import frechet_distance, kernel_inception_distance, standardize
from .seams import seam_scores

# Why a metric is left out of metrics.json (its key in "omitted"): a number that cannot
# mean anything on this data is not written at all, rather than written as a guess.
NO_TEMPLATES = ("the real dataset has no aligned defect-free templates (unpaired, e.g. mask-annotated photos): "
                "there are no real defects on templates to compare with")
ONE_CLASS = "the real dataset has one class: a classifier has nothing to tell apart (CAS needs at least two classes)"


@dataclass(frozen=True)
class EvalConfig:
    crop_size: int = 32  # side of every defect crop (pixels)
    context: float = 1.5  # crop window = this many times the box's longer side (square) ...
    min_window: int = 24  # ... but at least this many pixels
    max_crops_per_class: int = 500  # per set and class, drawn at random: bounds time on big sets
    # the small CNN: defaults from classifier.py's ClassifierConfig (one source of defaults)
    width: int = ClassifierConfig.width
    epochs: int = ClassifierConfig.epochs
    min_steps: int = ClassifierConfig.min_steps
    batch_size: int = ClassifierConfig.batch_size
    lr: float = ClassifierConfig.lr
    c2st_test_share: float = 0.5  # held-out share of the balanced real/synthetic crops
    # C2ST crops (crops.native_crop): the painted rect plus a margin, native pixels, in a canvas
    c2st_canvas: int = NativeCropConfig.canvas
    c2st_margin: float = NativeCropConfig.margin
    c2st_min_margin: int = NativeCropConfig.min_margin
    fd_splits: int = 10  # FD is averaged over this many random halvings of the real evaluation crops
    kid_subset_size: int = 100
    kid_subsets: int = 50
    diversity_max_per_class: int = 300
    change_threshold: int = THRESHOLD  # grey levels: a pixel "changed" (as `midg generate` labels boxes)
    min_changed_area: int = MIN_COMPONENT_PX  # changed specks smaller than this (pixels) are noise
    max_rects: int = 400  # per set, for seam, box and inpainting fidelity (a seeded sample)
    seam_grow: int = 4  # real boxes grown by this many pixels stand in for painted rectangles (seam reference)
    inpaint_crop_size: int = 64  # inpainting fidelity without a checkpoint (else the checkpoint's own)
    inpaint_context: float = 2.0

    def native_crops(self) -> NativeCropConfig:
        return NativeCropConfig(canvas=self.c2st_canvas, margin=self.c2st_margin, min_margin=self.c2st_min_margin)

    def classifier(self) -> ClassifierConfig:
        return ClassifierConfig(width=self.width, epochs=self.epochs, min_steps=self.min_steps,
                                batch_size=self.batch_size, lr=self.lr)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_names(paths: Sequence[Path]) -> list[str]:
    """A short unique name per synthetic set: its folder name (-2, -3, ... on repeats)."""
    names: list[str] = []
    for path in paths:
        base = Path(path).resolve().name or "synthetic"
        name, k = base, 2
        while name in names or name == "real":
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _cfg_get(cfg: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        val = cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)
        if val is not None:
            return val
    return None


def checkpoint_inpainter(checkpoint: Path, device: str):
    """The checkpoint's inpainting block as an Inpainter, with its crop size, context and channels."""
    try:
        from midg.augment.checkpoint import load_generator
    except ImportError as exc:
        raise ConfigError(f"--checkpoint needs midg.augment.checkpoint.load_generator, which is not available ({exc})") from None
    import torch

    gen = load_generator(checkpoint, device)
    cfg = gen.config

    def run(crops: np.ndarray, holes: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = gen.inpaint(torch.from_numpy(crops).to(device), torch.from_numpy(holes).to(device))
        return out.detach().float().cpu().numpy() if torch.is_tensor(out) else np.asarray(out, np.float32)

    geometry = {"size": _cfg_get(cfg, ("crop_size", "size")), "context": _cfg_get(cfg, ("context",)),
                "min_window": _cfg_get(cfg, ("min_window",)), "channels": _cfg_get(cfg, ("channels", "in_channels"))}
    return run, geometry


def _clean(obj: Any) -> Any:
    """JSON-ready and stable: floats to 6 significant digits, non-finite to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return float(f"{v:.6g}") if np.isfinite(v) else None
    return obj


def _versions() -> dict[str, str]:
    import cv2
    import torch

    return {"midg": tool_version(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def _distribution(feats_eval: np.ndarray, halves: list[tuple[np.ndarray, np.ndarray]], other: np.ndarray | None,
                  cfg: EvalConfig, seed: int) -> dict[str, Any]:
    """FD and KID of one half of the real evaluation features against `other` (None: the
    other half, the real-vs-real reference).

    FD grows for small samples, so the other side is always a random sample the size of
    the second half: every FD of a run compares sets of equal sizes. It is averaged over
    several random half splits (fd_std: its spread), since at a hundred crops one split
    moves it by about one unit. KID is unbiased: one split, all of `other`.
    """
    fds = []
    for i, (a, b) in enumerate(halves):
        if other is None:
            side = feats_eval[b]
        else:
            rng = np.random.default_rng([seed, i])
            side = other[np.sort(rng.choice(len(other), len(b), replace=False))] if len(other) > len(b) else other
        if len(a) < 4 or len(side) < 4:
            return {"fd": None, "fd_std": None, "kid": None, "kid_std": None, "n_fd": [len(a), len(side)]}
        fds.append(frechet_distance(feats_eval[a], side))
    a, b = halves[0]
    kid, kid_std = kernel_inception_distance(feats_eval[a], feats_eval[b] if other is None else other,
                                             subset_size=cfg.kid_subset_size, n_subsets=cfg.kid_subsets, seed=seed)
    return {"fd": float(np.mean(fds)), "fd_std": float(np.std(fds)), "kid": kid, "kid_std": kid_std,
            "n_fd": [len(a), len(side)]}


def evaluate_generator(real: str | Path, synthetic: Sequence[str | Path], out: str | Path, *, cfg: EvalConfig = EvalConfig(),
                       seed: int = 0, checkpoint: str | Path | None = None, device: str = "cpu", threads: int = 1,
                       show_progress: bool = True, log=print) -> dict[str, Any]:
    """Compute every metric, write `out` (metrics.json) and metrics.png beside it; return the dict.

    `threads`: torch CPU threads while this runs (0: leave torch's setting). One is the
    default: the CNNs are tiny, and on a shared machine several threads mostly wait on
    each other (measured 5-10x slower under load); results also depend on it bit-wise.
    """
    import torch

    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        return _evaluate(real, synthetic, out, cfg=cfg, seed=seed, checkpoint=checkpoint, device=device,
                         threads=torch.get_num_threads(), show_progress=show_progress, log=log)
    finally:
        torch.set_num_threads(before)


def _evaluate(real, synthetic, out, *, cfg: EvalConfig, seed: int, checkpoint, device: str, threads: int,
              show_progress: bool, log) -> dict[str, Any]:
    out = Path(out)
    if not synthetic:
        raise ConfigError("give at least one --synthetic dataset")
    seed_everything(seed)
    ccfg = cfg.classifier()
    real_ds = load_dataset(real)
    names = list(real_ds.names)
    channels = dataset_channels(real_ds)
    if channels == 0:
        raise DatasetError(real_ds.root, "the real dataset has no images")
    synth_paths = [Path(p) for p in synthetic]
    synth_ds = [load_dataset(p) for p in synth_paths]
    synth_names = set_names(synth_paths)
    crop_kw = dict(channels=channels, size=cfg.crop_size, context=cfg.context, min_window=cfg.min_window)

    def capped(crops: CropSet) -> CropSet:  # a fresh generator per set: no set's sample depends on another
        return cap_per_class(crops, cfg.max_crops_per_class, np.random.default_rng(seed))

    # ---- real crops and their roles
    real_crops = {s: capped(defect_crops(real_ds, (s,), names, **crop_kw)) for s in ("train", "val", "test")}
    eval_split = "test" if len(real_crops["test"]) else "val"
    train_splits = [s for s in ("train", "val") if s != eval_split and len(real_crops[s])]
    real_eval = real_crops[eval_split]
    if not len(real_eval) or not train_splits:
        raise DatasetError(real_ds.root, "the real dataset needs defects in its train split and in its test (or val) "
                                         f"split; found {({s: len(c) for s, c in real_crops.items()})}")
    real_train = concat([real_crops[s] for s in train_splits])
    log(f"real: {len(real_train)} training crops ({'+'.join(train_splits)}), {len(real_eval)} evaluation crops "
        f"({eval_split}), {channels} channel(s), {cfg.crop_size} px")

    synth_crops: dict[str, CropSet] = {}
    for name, ds in zip(synth_names, synth_ds):
        c = capped(defect_crops(ds, ("train", "val", "test"), names, **crop_kw))
        if not len(c):
            raise DatasetError(ds.root, "this synthetic dataset has no labelled defects")
        synth_crops[name] = c
        log(f"{name}: {len(c)} crops")

    # ---- C2ST crops: the whole painted rect plus a margin at native resolution (see crops.py);
    # real boxes are scaled to the synthetic set's rect size, so real crops depend on the set
    ncfg = cfg.native_crops()
    native_real: dict[tuple[float, float], CropSet] = {}

    def real_native(scale: tuple[float, float]) -> CropSet:
        if scale not in native_real:
            native_real[scale] = concat([capped(native_defect_crops(real_ds, (s,), names, channels=channels, cfg=ncfg,
                                                                   box_scale=scale, use_rects=False))
                                         for s in ("train", "val", "test")])
        return native_real[scale]

    # ---- the same real defects on their own templates (paired sources): a generator paints on
    # templates, so against these its crops differ only by what it painted, not by the surface
    on_templates: dict[tuple[float, float], CropSet] = {}

    def real_on_templates(scale: tuple[float, float]) -> CropSet:
        if scale not in on_templates:
            parts = [capped(template_defect_crops(real_ds, (s,), names, channels=channels, threshold=cfg.change_threshold,
                                                  cfg=ncfg, box_scale=scale)) for s in ("train", "val", "test")]
            on_templates[scale] = concat(parts) if any(len(p) for p in parts) else empty_cropset(channels, ncfg.canvas)
        return on_templates[scale]

    # unpaired sources (no templates) and one-class sources: the metrics that need what they
    # lack are left out with the reason, every other metric is computed as usual
    omitted: dict[str, str] = {}
    has_templates = len(real_on_templates((1.0, 1.0))) > 0
    if not has_templates:
        omitted.update(c2st_on_templates=NO_TEMPLATES, c2st_surface_gap=NO_TEMPLATES)
    with_cas = len(names) >= 2
    if not with_cas:
        omitted["cas"] = ONE_CLASS

    kw = dict(device=device, show_progress=show_progress)
    # ---- CAS reference (real -> real) and its feature space
    reference: dict[str, Any] = {}
    if with_cas:
        reference["cas"], ref_model = classification_accuracy_score(real_train, real_eval, names, ccfg, seed=seed,
                                                                    desc="CAS reference (real)", **kw)
        feature_space = "the reference CNN trained to tell the real classes apart (its CAS model)"
    else:
        ref_model = _defect_vs_surface_model(real_ds, train_splits, real_train, crop_kw, capped, ccfg, seed, kw)
        feature_space = "a CNN trained to tell the real train defects from the surface beside them (one class)"
    feats_eval_raw = embed(ref_model, real_eval.x)
    feats_eval = standardize(feats_eval_raw, feats_eval_raw)
    halves = [stratified_halves(real_eval.y, np.random.default_rng([seed, i])) for i in range(cfg.fd_splits)]
    reference.update(_distribution(feats_eval, halves, None, cfg, seed))
    reference["c2st"] = _real_vs_real_c2st(real_native((1.0, 1.0)), ccfg, seed, cfg, kw)
    if has_templates:
        # how much the templates' surface alone gives away: the real defects on their real
        # surface against the very same defects put on their templates (0.5: the surfaces agree)
        reference["c2st_surface_gap"] = classifier_two_sample_test(
            real_native((1.0, 1.0)), real_on_templates((1.0, 1.0)), ccfg, seed=seed, test_share=cfg.c2st_test_share,
            desc="C2ST real vs real on templates", **kw)
    reference["diversity"] = {
        "features": mean_pairwise_distance(feats_eval, real_eval.y, names, max_per_class=cfg.diversity_max_per_class, seed=seed),
        "pixels": mean_pairwise_distance(pixel_features(real_eval.x), real_eval.y, names, max_per_class=cfg.diversity_max_per_class, seed=seed),
    }
    # real defects have no painted rectangle: their box grown a little puts the border in
    # the surroundings, as a generator's rectangle is; the score there is what "seamless" looks like
    g = cfg.seam_grow
    rects_real = [(e.file, [b.x1 - g, b.y1 - g, b.x2 + g, b.y2 + g]) for s in real_ds.splits for e in real_ds.images(s)
                  for b in e.boxes]
    reference["seam"] = seam_scores(real_ds, rects_real, max_rects=cfg.max_rects, seed=seed)
    reference["box_fidelity"] = pair_box_fidelity(real_ds, threshold=cfg.change_threshold, min_area=cfg.min_changed_area,
                                                  max_boxes=cfg.max_rects, seed=seed)
    # a defect's own edge, against the annotated outlines (the seam score reads ~1 once a
    # defect keeps a ring of untouched surface in its rectangle); box-only data has no outlines
    reference["edge_contrast"] = real_edge_contrast(real_ds, real_ds.splits)
    # the other end of the real bracket (edge_contrast.py: where a real edge is drawn decides its score)
    reference["edge_contrast_changed"] = real_edge_contrast(real_ds, real_ds.splits, region="changed")
    if not reference["edge_contrast"]["n"]:
        reference["edge_contrast"]["note"] = "omitted: the real defects have no outlines (meta.json instance_masks)"

    # ---- every synthetic set
    methods: dict[str, Any] = {}
    normal_roots = [real_ds.root, real_ds.root / "normals"]
    for i, (name, ds) in enumerate(zip(synth_names, synth_ds)):
        crops = synth_crops[name]
        s = seed  # the same seed for every set: a set's numbers do not depend on its place in the list
        m: dict[str, Any] = {"path": str(synth_paths[i]), "seed": s,
                             "crops": {"n": len(crops), "per_class": dict(zip(names, crops.per_class(len(names)))),
                                       # an annotated canvas' own labels: real, not made, so in no metric
                                       "carried_real_boxes_left_out": sum(len(b) for b in carried_boxes(ds).values())}}
        if with_cas:
            m["cas"], _ = classification_accuracy_score(crops, real_eval, names, ccfg, seed=s, desc=f"CAS {name}", **kw)
        scale = rect_box_ratio(ds)
        synth_native = capped(native_defect_crops(ds, ("train", "val", "test"), names, channels=channels, cfg=ncfg))
        m["c2st"] = {**classifier_two_sample_test(real_native(scale), synth_native, ccfg, seed=s,
                                                  test_share=cfg.c2st_test_share, desc=f"C2ST {name}", **kw),
                     "real_box_scale": list(scale)}
        if has_templates:
            m["c2st_on_templates"] = {**classifier_two_sample_test(real_on_templates(scale), synth_native, ccfg, seed=s,
                                                                   test_share=cfg.c2st_test_share,
                                                                   desc=f"C2ST {name} vs real on templates", **kw),
                                      "real_box_scale": list(scale)}
        feats = standardize(embed(ref_model, crops.x), feats_eval_raw)
        m.update(_distribution(feats_eval, halves, feats, cfg, s))
        div_f = mean_pairwise_distance(feats, crops.y, names, max_per_class=cfg.diversity_max_per_class, seed=s)
        div_p = mean_pairwise_distance(pixel_features(crops.x), crops.y, names, max_per_class=cfg.diversity_max_per_class, seed=s)
        m["diversity"] = {"features": div_f, "pixels": div_p,
                          "ratio_features": _ratio(div_f["mean"], reference["diversity"]["features"]["mean"]),
                          "ratio_pixels": _ratio(div_p["mean"], reference["diversity"]["pixels"]["mean"])}
        rects, rect_source = defect_rects(ds)
        m["seam"] = {**seam_scores(ds, rects, max_rects=cfg.max_rects, seed=s), "rects": rect_source}
        m["box_fidelity"] = box_fidelity(ds, normal_roots, threshold=cfg.change_threshold, min_area=cfg.min_changed_area,
                                         max_defects=cfg.max_rects, seed=s)
        if reference["edge_contrast"]["n"]:
            edges = synthetic_edge_contrast(ds, real_ds)
            m["edge_contrast"] = {**edges, "edge_gap": edge_gap(edges, reference["edge_contrast"]),
                                  "within_real_bracket": within_real_bracket(edges, reference["edge_contrast"],
                                                                             reference["edge_contrast_changed"])}
        shape = shape_fidelity(ds, normal_roots, threshold=cfg.change_threshold, min_area=cfg.min_changed_area)
        if shape is not None:
            m["shape_fidelity"] = shape
        methods[name] = m
        cas_text = (f"CAS {_fmt(m['cas']['balanced_accuracy'])} (real {_fmt(reference['cas']['balanced_accuracy'])}), "
                    if with_cas else "")
        log(f"{name}: {cas_text}C2ST {_fmt(m['c2st']['accuracy'])}, FD {_fmt(m['fd'])} (real {_fmt(reference['fd'])})")

    # ---- inpainting fidelity on paired real sources
    inpainting = _inpainting(real_ds, cfg, channels, checkpoint, device, seed, show_progress)

    metrics = {
        "tool": "midg evaluate-generator",
        "versions": _versions(),
        "seed": seed,
        "device": device,
        "threads": threads,
        "config": dataclasses.asdict(cfg),
        "real": {"path": str(real), "names": names, "channels": channels, "eval_split": eval_split,
                 "train_splits": train_splits,
                 "crops": {sp: {"n": len(c), "per_class": dict(zip(names, c.per_class(len(names))))} for sp, c in real_crops.items()}},
        "synthetic": [{"name": n, "path": str(p)} for n, p in zip(synth_names, synth_paths)],
        "reference": reference,
        "methods": methods,
        "omitted": omitted,  # metric key -> why it is not in "reference" / "methods"
        "feature_space": feature_space,  # what FD, KID and feature diversity measure in
        "inpainting": inpainting,
        "crop_format": CROP_FORMAT,
        # C2ST crops differ from the crops listed in crops_used (which CAS, FD, KID and
        # diversity use); figures from before this rule (box crops resized to crop_size) are not comparable
        "c2st_crops": {"rule": C2ST_CROP_RULE, "canvas": ncfg.canvas, "margin": ncfg.margin,
                       "min_margin": ncfg.min_margin, "resize": "INTER_AREA, only when bigger than the canvas",
                       "version": 2},
        "crops_used": {**{f"real/{sp}": c.describe(names) for sp, c in real_crops.items()},
                       **{n: c.describe(names) for n, c in synth_crops.items()}},
    }
    metrics = _clean(metrics)
    atomic_write_json(out, metrics)
    atomic_write_bytes(out.with_suffix(".png"), plot_metrics(metrics))
    return metrics


def _defect_vs_surface_model(real_ds: Dataset, train_splits: Sequence[str], real_train: CropSet, crop_kw: dict,
                             capped, ccfg: ClassifierConfig, seed: int, kw: dict):
    """FD and KID's feature CNN for a one-class source: trained to tell the real train
    defects (1) from crops of the same geometry on the surface beside them (0), so its
    features are about what makes a defect on this surface, learned in-domain as the
    class CNN's are."""
    surface = capped(surface_crops(real_ds, train_splits, seed=seed, **crop_kw))
    if not len(surface):
        raise DatasetError(real_ds.root, "one class and no room beside the boxes for surface crops: "
                                         "the feature CNN has nothing to contrast the defects with")
    x = np.concatenate([real_train.x, surface.x])
    y = np.concatenate([np.ones(len(real_train), np.int64), np.zeros(len(surface), np.int64)])
    return train_classifier(x, y, 2, ccfg, seed=seed, desc="feature CNN (defect vs surface)", **kw)


def _real_vs_real_c2st(real_all: CropSet, ccfg: ClassifierConfig, seed: int, cfg: EvalConfig, kw: dict) -> dict[str, Any]:
    a, b = stratified_halves(real_all.y, np.random.default_rng(seed + 10_000))
    return classifier_two_sample_test(real_all.take(a), real_all.take(b), ccfg, seed=seed, test_share=cfg.c2st_test_share,
                                      desc="C2ST real vs real", **kw)


def _inpainting(real_ds: Dataset, cfg: EvalConfig, channels: int, checkpoint, device: str, seed: int,
                show_progress: bool) -> dict[str, Any]:
    import cv2

    # the baselines see exactly the crops the checkpoint sees: its crop size, context and window
    size, context, min_window = cfg.inpaint_crop_size, cfg.inpaint_context, cfg.min_window
    inpainters = {"telea": opencv_inpainter(cv2.INPAINT_TELEA), "ns": opencv_inpainter(cv2.INPAINT_NS)}
    note = None
    if checkpoint is not None:
        fn, geo = checkpoint_inpainter(Path(checkpoint), device)
        size, context = int(geo["size"] or size), float(geo["context"] or context)
        min_window, channels = int(geo["min_window"] or min_window), int(geo["channels"] or channels)
        inpainters["midg"] = fn
    else:
        note = "no --checkpoint: only the OpenCV baselines were scored"
    result = inpainting_fidelity(real_ds, inpainters, size=size, channels=channels, context=context,
                                 min_window=min_window, max_rects=cfg.max_rects, seed=seed, show_progress=show_progress)
    result["min_window"] = min_window
    if note:
        result["note"] = note if result.get("n_rects") else f"{result.get('note')}; {note}"
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


# --------------------------------------------------------------------------- plot
