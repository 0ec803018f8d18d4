"""Copy-paste on mask-annotated photographs: the library keeps each defect's own mask, and
copy-paste (alpha or Poisson) moves only the mask's pixels, never the rectangle of
another surface; libraries without masks keep today's behaviour.

    .venv/bin/python -m pytest tests/test_copypaste_masks.py -x -q
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from midg.augment.copypaste import MASK_FEATHER_PX, mask_alpha, membrane, paste_defect
from midg.augment.library import LIBRARY_FILE, load_library, write_library, write_library_folder
from midg.augment.outlines import annotated_masks
from midg.datasets.images import read_image
from midg.datasets.layout import load_dataset
from textured_builders import textured_surface, write_unpaired_real

NAMES = ["pit", "crack"]


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """A textured colour set with instance masks (no templates) and its library."""
    root = tmp_path_factory.mktemp("masked")
    write_unpaired_real(root / "real", NAMES, n_train=8, n_test=0, seed=2, n_normals=4)
    real = load_dataset(root / "real")
    write_library_folder(real, root / "lib", crop_size=32, min_window=16)
    return root, real, load_library(root / "lib")


def test_library_keeps_each_defects_own_instance_mask(masked):
    root, real, lib = masked
    assert lib.masked.all() and not lib.paired.any() and len(lib) == 16
    k = 0
    for entry in real.images("train"):
        inst = cv2.imread(str(real.path(real.meta["instance_masks"][entry.file])), cv2.IMREAD_UNCHANGED)
        for j, box in enumerate(entry.boxes):
            x1, y1, x2, y2 = int(box.x1), int(box.y1), int(np.ceil(box.x2)), int(np.ceil(box.y2))
            _, changed, _ = lib.entry(k)
            assert np.array_equal(changed, (inst[y1:y2, x1:x2] == j + 1).astype(np.uint8))  # boxes < 32 px: 1:1
            assert 0 < changed.sum() < changed.size  # the defect, not its box
            k += 1


def test_library_keeps_labelme_polygons(tmp_path):
    """LabelMe polygons (BSData's format) become the entries' masks; a rectangle shape has none."""
    from midg.datasets.labelme import import_labelme

    src = tmp_path / "lm"
    src.mkdir()
    rng = np.random.default_rng(0)
    poly = [[10, 12], [30, 9], [36, 25], [22, 33], [12, 26]]
    for i in range(3):
        cv2.imwrite(str(src / f"p{i}.png"), textured_surface(rng, 48))
        shapes = [{"label": "pit", "shape_type": "polygon", "points": [[x + i, y] for x, y in poly]},
                  {"label": "pit", "shape_type": "rectangle", "points": [[2, 36], [9, 44]]}]
        (src / f"p{i}.json").write_text(json.dumps({"shapes": shapes, "imagePath": f"p{i}.png", "imageData": None}))
    ds = import_labelme(src, tmp_path / "ds")
    entry = ds.images("train")[0]
    found = annotated_masks(ds, entry)
    assert found[1] is None and found[0] is not None and found[0].sum() > 300
    write_library(ds, tmp_path / "lib", crop_size=32)
    lib = load_library(tmp_path / "lib")
    assert lib.masked.tolist() == [1, 0] * 3
    _, changed, _ = lib.entry(0)
    want = np.zeros((48, 48), np.uint8)
    cv2.fillPoly(want, [np.asarray(poly, np.int32)], 1)
    assert np.array_equal(changed, want[9:33, 10:36])
    assert lib.entry(1)[1].all()  # the rectangle: its whole box, as before


def test_an_old_library_without_masks_loads_and_pastes_the_box_as_before(masked, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save

    root, _, lib = masked
    path = root / "lib" / LIBRARY_FILE
    with safe_open(str(path), framework="np") as fh:
        metadata = fh.metadata()
    arrays = {k: v for k, v in load_file(str(path)).items() if k != "masked"}
    (tmp_path / LIBRARY_FILE).write_bytes(save(arrays, metadata=metadata))
    old = load_library(tmp_path)
    assert not old.masked.any() and len(old) == len(lib)
    image = textured_surface(np.random.default_rng(9))
    rect = (30, 30, 54, 50)
    before = paste_defect(image, rect, old, 0, np.random.default_rng(0))
    changed = np.any(before != image, axis=2)
    assert changed[30:50, 30:54].mean() > 0.8  # the whole rectangle of the other surface, feathered


def _mask_in_rect(lib, idx: int, rect, rng_seed: int) -> np.ndarray:
    """The entry's mask as paste_defect places it (the same flips from the same rng)."""
    x1, y1, x2, y2 = rect
    _, changed, _ = lib.entry(idx)
    flips = np.random.default_rng(rng_seed).integers(0, 2, 2)
    if flips[0]:
        changed = changed[:, ::-1]
    if flips[1]:
        changed = changed[::-1]
    return cv2.resize(np.ascontiguousarray(changed, np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR) > 0.5


@pytest.mark.parametrize("blend", ["alpha", "poisson"])
def test_masked_paste_changes_only_the_mask(masked, blend):
    """On a textured photo: every changed pixel lies in the entry's mask scaled into the
    rect (alpha: the feather ramps inside it; Poisson: the mask dilated by the feather,
    so the defect's step from the surface is solved for); nothing outside the rect moves;
    the defect arrives (darker than the surface it lands on)."""
    _, _, lib = masked
    image = textured_surface(np.random.default_rng(7))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_FEATHER_PX + 1, 2 * MASK_FEATHER_PX + 1))
    for idx in range(len(lib)):
        bh, bw = (int(v) for v in lib.box_hw[idx])
        rect = (20, 24, 20 + int(bw * 1.5), 24 + int(bh * 1.5))
        out = paste_defect(image, rect, lib, idx, np.random.default_rng(idx), blend=blend)
        x1, y1, x2, y2 = rect
        outside = np.ones(image.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        assert np.array_equal(out[outside], image[outside])
        mask = _mask_in_rect(lib, idx, rect, idx)
        allowed = mask if blend == "alpha" else cv2.dilate(mask.astype(np.uint8), kernel) > 0
        changed = np.any(out[y1:y2, x1:x2] != image[y1:y2, x1:x2], axis=2)
        assert changed.any() and not (changed & ~allowed).any(), (idx, int((changed & ~allowed).sum()))
        # the defect is dark on the surface: its mask comes out darker than the surface there
        assert out[y1:y2, x1:x2][mask].mean() < image[y1:y2, x1:x2][mask].mean() - 20, idx


def test_mask_alpha_ramps_inside_the_mask():
    mask = np.zeros((20, 20), bool)
    mask[4:16, 4:16] = True
    a = mask_alpha(mask, feather=3)
    assert (a[~mask] == 0).all() and a[10, 10] == 1.0
    assert 0 < a[4, 10] < a[5, 10] < a[6, 10] <= 1.0  # ramps up from the border
    thin = np.zeros((9, 20), bool)
    thin[4, 2:18] = True  # one pixel wide: still pasted at full strength
    assert mask_alpha(thin)[4, 10] == 1.0
    edge = np.ones((10, 10), bool)  # touching the rect's edge: no hard step there
    assert mask_alpha(edge, 3)[0, 5] < 0.5


def test_membrane_on_a_region_keeps_every_pixel_outside_it():
    rng = np.random.default_rng(0)
    ring = rng.normal(0, 10, (12, 15))
    region = np.zeros((12, 15), bool)
    region[3:9, 4:11] = True
    region[5, 2:14] = True
    out = membrane(ring, region)
    assert np.array_equal(out[~region], ring[~region])
    # harmonic inside: each solved pixel is the mean of its four neighbours
    ys, xs = np.nonzero(region[1:-1, 1:-1])
    ys, xs = ys + 1, xs + 1
    nb = (out[ys - 1, xs] + out[ys + 1, xs] + out[ys, xs - 1] + out[ys, xs + 1]) / 4
    assert np.allclose(out[ys, xs], nb, atol=1e-2)
    # the whole inside as the region is the rectangle solve
    assert np.array_equal(membrane(ring, np.pad(np.ones((10, 13), bool), 1)), membrane(ring))


@pytest.mark.parametrize("method", ["copypaste", "poisson"])
def test_generate_on_masked_photos_keeps_the_label_rule(masked, tmp_path, method):
    """`midg generate --method copypaste|poisson` with a masked library: every pixel that
    differs from its normal lies in its defect's label box, each box holds a change, and
    far fewer pixels change than the rectangles hold (the masks, not the rectangles)."""
    from midg.augment.generate import generate_dataset

    root, real, lib = masked
    ds = generate_dataset(root / "lib", real.root / "normals", tmp_path / "out", n_images=6, seed=1, method=method,
                          progress=False)
    by_image: dict[str, list] = {}
    for d in ds.meta["defects"]:
        by_image.setdefault(d["image"], []).append(d)
    kept, n_changed, rect_area = 0, 0, 0
    for e in ds.images("train"):
        normal = read_image(real.root / "normals" / by_image[e.file][0]["normal"]).astype(int)
        diff = np.abs(read_image(ds.path(e.file)).astype(int) - normal).max(axis=2)
        inside = np.zeros(diff.shape, bool)
        for b in e.boxes:
            inside[int(b.y1):int(np.ceil(b.y2)), int(b.x1):int(np.ceil(b.x2))] = True
            assert diff[int(b.y1):int(np.ceil(b.y2)), int(b.x1):int(np.ceil(b.x2))].any()
        assert not (diff.astype(bool) & ~inside).any(), e.file
        kept += len(e.boxes)
        n_changed += int(diff.astype(bool).sum())
        rect_area += sum((r[2] - r[0]) * (r[3] - r[1]) for d in by_image[e.file] if d["box"] is not None
                         for r in [d["rect"]])
    assert kept >= 6
    assert n_changed < 0.75 * rect_area, (n_changed, rect_area)  # pits fill ~0.78 of their box, cracks far less


def test_library_keeps_masks_beside_the_images(tmp_path):
    """`midg data import masks` (beside the images): the mask file, thresholded as the
    import did, is cut to each box; an irregular mask stays irregular."""
    from midg.datasets.folder import MaskSplit, import_masks_beside

    rng = np.random.default_rng(1)
    folder = tmp_path / "src" / "pit"
    folder.mkdir(parents=True)
    want = {}
    for i in range(3):
        cv2.imwrite(str(folder / f"a{i}.png"), textured_surface(rng, 48))
        mask = np.zeros((48, 48), np.uint8)
        cv2.ellipse(mask, (20 + i, 22), (9, 5), 30, 0, 360, 255, -1)
        cv2.imwrite(str(folder / f"a{i}_mask.png"), mask)
        want[f"a{i}"] = mask > 127
    ds = import_masks_beside(tmp_path / "src", tmp_path / "ds", split=MaskSplit(val=0.0, test=0.0))
    write_library(ds, tmp_path / "lib", crop_size=32)
    lib = load_library(tmp_path / "lib")
    assert lib.masked.all() and len(lib) == 3
    for k, entry in enumerate(ds.images("train")):
        (box,) = entry.boxes
        x1, y1, x2, y2 = int(box.x1), int(box.y1), int(np.ceil(box.x2)), int(np.ceil(box.y2))
        mask = want[Path(entry.file).stem][y1:y2, x1:x2]
        assert np.array_equal(lib.entry(k)[1], mask.astype(np.uint8))
        assert lib.entry(k)[1].mean() < 0.9  # an ellipse, not its box
