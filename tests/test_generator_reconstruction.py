"""benchmarks/generator_reconstruction.py's per-defect scores: each flags the flaw it is for."""

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import generator_reconstruction as gr  # noqa: E402


def _pit(ring: bool = False, stripes: bool = False, across: bool = False):
    """A 48 px textured surface and a soft dark pit (disc of radius 12) on it; optionally a
    dark ring painted along the outline, or a periodic hatching inside (vertical lines, or
    horizontal ones `across`)."""
    rng = np.random.default_rng(0)
    surface = np.clip(0.6 + 0.03 * cv2.GaussianBlur(rng.standard_normal((48, 48)).astype(np.float32), (0, 0), 2), 0, 1)
    yy, xx = np.mgrid[:48, :48]
    r = np.hypot(yy - 24, xx - 24)
    cover = r <= 12
    depth = 0.2 * np.clip((12 - r) / 6, 0, 1)  # soft: full depth 6 px inside the outline
    if ring:
        depth = np.where(cover & (r > 10.5), 0.3, depth)
    if stripes:
        depth = depth + np.where(cover, 0.06 * np.sign(np.sin((yy if across else xx) * np.pi / 2)), 0)
    return (surface - depth).astype(np.float32), surface, cover


def test_a_ring_along_the_outline_reads_steeper_and_hatching_reads_busier():
    real, surface, cover = _pit()
    same = gr.pit_scores(real, real, surface, cover)
    assert same["real"] == same["fake"]
    ringed = gr.pit_scores(real, _pit(ring=True)[0], surface, cover)
    assert ringed["fake"]["edge_contrast"] > 1.5 * ringed["real"]["edge_contrast"]
    hatched = gr.pit_scores(real, _pit(stripes=True)[0], surface, cover)
    assert hatched["fake"]["detail"][0] > 2 * hatched["real"]["detail"][0]
    assert abs(hatched["fake"]["tones"][2] - hatched["real"]["tones"][2]) < 0.05  # same median depth: only the detail tells
    # the stripe ratio tells a hatching's direction where the grain has none
    assert abs(hatched["real"]["stripe_log_ratio"]) < 0.3
    assert hatched["fake"]["stripe_log_ratio"] < -1.0
    assert gr.pit_scores(real, _pit(stripes=True, across=True)[0], surface, cover)["fake"]["stripe_log_ratio"] > 1.0
    assert gr.pit_scores(real, real, surface, np.zeros_like(cover)) is None  # no cover, no score


def test_summary_is_the_median_over_defects_per_side():
    real, surface, cover = _pit()
    rows = [gr.pit_scores(real, _pit(ring=True)[0], surface, cover), gr.pit_scores(real, real, surface, cover),
            gr.pit_scores(real, _pit(ring=True)[0], surface, cover)]
    s = gr.summarise(rows)
    assert s["n"] == 3
    assert s["fake"]["edge_contrast_mean_log"] > s["real"]["edge_contrast_mean_log"]
    assert s["real"]["tones_median"]["0.5"] == round(float(np.median((real - surface)[cover])), 4)
