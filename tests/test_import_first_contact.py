"""First contact with folders as published (issue 22): `import auto` finds the dataset a
few levels down, upper-case VOC folders, a README figure beside class folders, an all-empty
class folder as normals, empty masks in a defect folder, specks, background images as
normals, `--normals` on every importer, LabelMe images in ../data/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from data_builders import write_coco_dataset, write_image, write_yolo_dataset, yolo_line
from midg.augment.generate import list_normals
from midg.datasets.boxes import Box
from midg.datasets.check import check_dataset
from midg.datasets.detect import detect_formats, import_auto
from midg.datasets.errors import DatasetError
from midg.datasets.folder import MaskSplit, import_masks, import_masks_beside
from midg.datasets.imports import import_yolo
from midg.datasets.labelme import import_labelme
from midg.datasets.layout import load_dataset
from midg.datasets.voc import import_voc
from midg.pipelines.cli import app
from test_import_labelme import _json
from test_import_voc import IMAGES as VOC_IMAGES, NAMES as VOC_NAMES, write_voc_set

NO_SPLIT = MaskSplit(val=0.0, test=0.0)
BSDATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "BSData"


def _mask(path: Path, h: int, w: int, rects: list[tuple[int, int, int, int]] = ()) -> Path:
    m = np.zeros((h, w), np.uint8)
    for x1, y1, x2, y2 in rects:
        m[y1:y2, x1:x2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m).save(path)
    return path


def write_tile_repo(root: Path) -> Path:
    """Shaped like the magnetic-tile repo: MT_<class>/Imgs/NAME.jpg beside NAME.png, a
    defect-free MT_Free/ (all masks empty), a defect image whose mask is empty, a 2-px speck,
    and the README's figure at the root (dataset.jpg beside an RGBA dataset.png)."""
    (root / "README.md").parent.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("# tiles\n![](dataset.jpg)\n")
    write_image(root / "dataset.jpg", 30, 40, seed=9, channels=3)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 4), dtype=np.uint8), "RGBA").save(root / "dataset.png")
    write_image(root / ".git" / "objects" / "x.jpg", 30, 40, seed=8)  # never searched
    _mask(root / ".git" / "objects" / "x.png", 30, 40, [(1, 1, 9, 9)])
    blow = root / "MT_Blowhole" / "Imgs"
    write_image(blow / "b1.jpg", 30, 40, seed=1)
    _mask(blow / "b1.png", 30, 40, [(3, 4, 9, 9), (30, 20, 32, 21)])  # a blob and a 2-px speck
    write_image(blow / "b2.jpg", 30, 40, seed=2)
    _mask(blow / "b2.png", 30, 40, [(10, 10, 20, 16)])
    write_image(blow / "b3.jpg", 30, 40, seed=3)
    _mask(blow / "b3.png", 30, 40)  # shows a defect, but its mask is empty
    write_image(root / "MT_Crack" / "Imgs" / "c1.jpg", 30, 40, seed=4)
    _mask(root / "MT_Crack" / "Imgs" / "c1.png", 30, 40, [(0, 0, 40, 3)])
    for k in (1, 2):
        write_image(root / "MT_Free" / "Imgs" / f"f{k}.jpg", 30, 40, seed=10 + k)
        _mask(root / "MT_Free" / "Imgs" / f"f{k}.png", 30, 40)
    return root


def _all_boxes(ds) -> dict[str, list]:
    return {Path(e.file).name: [(ds.names[b.cls], *b.xyxy()) for b in e.boxes]
            for s in ("train", "val", "test") for e in ds.images(s)}


def test_tile_repo_imports_with_auto_alone(tmp_path):
    repo = write_tile_repo(tmp_path / "Magnetic-tile-defect-datasets.")
    notes: list[str] = []
    ds = import_auto(repo, tmp_path / "out", report=notes.append)
    check_dataset(tmp_path / "out")
    assert notes[0].startswith("format: masks (") and notes[1] == f"found at: {repo}"
    assert ds.names == ["MT_Blowhole", "MT_Crack"]  # neither Imgs, nor the repo's name, nor MT_Free
    assert _all_boxes(ds) == {"b1.jpg": [("MT_Blowhole", 3, 4, 9, 9)], "b2.jpg": [("MT_Blowhole", 10, 10, 20, 16)],
                              "c1.jpg": [("MT_Crack", 0, 0, 40, 3)]}
    assert sorted(Path(p).name for p in ds.normals) == ["f1.jpg", "f2.jpg"]
    masks = json.loads((tmp_path / "out" / "meta.json").read_text())["masks"]
    assert masks["skipped_outside_class_folders"] == ["dataset.jpg"]
    assert masks["unlabelled_defect_images"] == [{"image": "MT_Blowhole/Imgs/b3.jpg", "why": "empty mask"}]
    assert masks["components_below_min_area"] == 1 and masks["defect_free_folders"] == ["MT_Free"]
    said = "\n".join(notes)
    assert "skipped 1 file(s) in no class folder: dataset.jpg" in said
    assert "MT_Free (2 image(s) -> normals; no class)" in said
    assert "1 defect image(s) without a usable mask (skipped" in said and "MT_Blowhole/Imgs/b3.jpg" in said
    assert "dropped 1 mask component(s) smaller than --min-area 4 px" in said


def test_tile_repo_class_from_grandparent_and_map_skip_the_figure(tmp_path):
    repo = write_tile_repo(tmp_path / "repo")
    ds = import_masks_beside(repo, tmp_path / "g", class_from="grandparent", split=NO_SPLIT)
    assert ds.names == ["MT_Blowhole", "MT_Crack"] and len(ds.normals) == 2
    cmap = tmp_path / "map.yaml"
    cmap.write_text("MT_Blowhole: blowhole\nMT_Crack: crack\nMT_Free: free\n")
    ds = import_masks_beside(repo, tmp_path / "m", class_from="map", class_map=cmap, split=NO_SPLIT)
    assert ds.names == ["blowhole", "crack"] and len(ds.normals) == 2  # a mapped folder of empty masks: no class
    cmap.write_text("MT_Blowhole: blowhole\nMT_Crack: crack\n")
    notes: list[str] = []
    ds = import_masks_beside(repo, tmp_path / "m2", class_from="map", class_map=cmap, split=NO_SPLIT,
                             report=notes.append)
    assert ds.names == ["blowhole", "crack"] and ds.normals == []  # MT_Free is in no mapped folder: skipped
    assert any("skipped 3 file(s) in no class folder: MT_Free/Imgs/f1.jpg, MT_Free/Imgs/f2.jpg, dataset.jpg" in n
               for n in notes)


def test_empty_mask_and_empty_as_and_min_area_options(tmp_path):
    repo = write_tile_repo(tmp_path / "repo")
    ds = import_masks_beside(repo, tmp_path / "n", split=NO_SPLIT, empty_mask="normal")
    assert sorted(Path(p).name for p in ds.normals) == ["b3.jpg", "f1.jpg", "f2.jpg"]
    ds = import_masks_beside(repo, tmp_path / "b", split=NO_SPLIT, empty_as="background")
    assert ds.normals == [] and ds.names == ["MT_Blowhole", "MT_Crack"]
    assert sorted(n for n, boxes in _all_boxes(ds).items() if not boxes) == ["f1.jpg", "f2.jpg"]
    ds = import_masks_beside(repo, tmp_path / "one", split=NO_SPLIT, min_area=1)
    assert _all_boxes(ds)["b1.jpg"] == [("MT_Blowhole", 3, 4, 9, 9), ("MT_Blowhole", 30, 20, 32, 21)]
    # an image whose only component is a speck is no defect image either
    ds = import_masks_beside(repo, tmp_path / "big", split=NO_SPLIT, min_area=31)
    assert "b1.jpg" not in _all_boxes(ds)
    unl = json.loads((tmp_path / "big" / "meta.json").read_text())["masks"]["unlabelled_defect_images"]
    assert {"image": "MT_Blowhole/Imgs/b1.jpg", "why": "only components below --min-area 31"} in unl


def test_cli_masks_beside_options(tmp_path):
    repo = write_tile_repo(tmp_path / "repo")
    normals = tmp_path / "extra"
    write_image(normals / "n1.png", 30, 40, seed=20)
    r = CliRunner().invoke(app, ["data", "import", "masks", str(repo), str(tmp_path / "out"), "--empty-mask", "normal",
                                 "--min-area", "1", "--normals", str(normals), "--val-frac", "0", "--test-frac", "0"])
    assert r.exit_code == 0, r.output
    ds = load_dataset(tmp_path / "out")
    assert sorted(Path(p).name for p in ds.normals) == ["b3.jpg", "f1.jpg", "f2.jpg", "n1.png"]
    assert ds.counts()["train"]["boxes"] == 4
    r = CliRunner().invoke(app, ["data", "import", "masks", "--help"])
    assert "default 4" in r.output and "specks" in r.output
    r = CliRunner().invoke(app, ["data", "import", "masks", str(repo), str(tmp_path / "x"), "--empty-mask", "keep"])
    assert r.exit_code != 0 and "--empty-mask must be one of" in str(r.exception)
    assert not (tmp_path / "x").exists()


def test_yolo_in_a_sub_folder_of_a_repo(tmp_path):
    repo = tmp_path / "repo"
    write_yolo_dataset(repo / "Datasets")
    (repo / "README.md").write_text("see Datasets/\n")
    shutil.copytree(repo / "Datasets", repo / "runs" / "detect" / "val")  # a run folder's copy: never searched
    (repo / "models").mkdir()
    (repo / "models" / "data.yaml").write_text("train: x\nnames: [a]\n")
    notes: list[str] = []
    ds = import_auto(repo, tmp_path / "out", report=notes.append)
    assert notes[0].startswith("format: yolo (data.yaml") and notes[1] == f"found at: {repo / 'Datasets'} (1 level(s) below {repo})"
    direct = import_yolo(repo / "Datasets", tmp_path / "direct")
    assert _all_boxes(ds) == _all_boxes(direct) and ds.counts() == direct.counts()
    # a YOLO copy two levels down (ultralytics/dataset/), found the same way
    other = tmp_path / "voc_repo"
    write_yolo_dataset(other / "ultralytics" / "dataset")
    (c,) = detect_formats(other)
    assert c.format == "yolo" and c.root == other / "ultralytics" / "dataset"


def test_upper_case_voc_folders(tmp_path):
    repo = tmp_path / "repo"
    write_voc_set(repo)
    (repo / "Annotations").rename(repo / "ANNOTATIONS")
    (repo / "JPEGImages").rename(repo / "IMAGES")
    lower = import_voc(repo / "ANNOTATIONS", repo / "IMAGES", tmp_path / "direct")
    notes: list[str] = []
    ds = import_auto(repo, tmp_path / "out", report=notes.append)
    assert notes[0].startswith("format: voc (") and f"images: {repo / 'IMAGES'}" in notes[0]
    assert _all_boxes(ds) == _all_boxes(lower) and len(ds.normals) == len(lower.normals)
    # auto on ANNOTATIONS/ itself: the images are in the sibling folder, not beside the XML files
    ds = import_auto(repo / "ANNOTATIONS", tmp_path / "out2")
    assert _all_boxes(ds) == _all_boxes(lower)


def test_voc_held_out_set_beside_the_main_one_is_named_and_importable(tmp_path):
    """NEU-DET's clone (siddhartamukherjee/NEU-DET-Steel-Surface-Defect-Detection): ANNOTATIONS/ +
    IMAGES/ and a held-out Validation_Annotations/ + Validation_Images/. auto imports the main
    set, names the held-out one instead of dropping it silently, and auto on it finds its images."""
    repo = tmp_path / "repo"
    write_voc_set(repo)
    (repo / "Annotations").rename(repo / "ANNOTATIONS")
    (repo / "JPEGImages").rename(repo / "IMAGES")
    held = tmp_path / "held"
    write_voc_set(held)
    (held / "Annotations").rename(repo / "Validation_Annotations")
    (held / "JPEGImages").rename(repo / "Validation_Images")
    notes: list[str] = []
    ds = import_auto(repo, tmp_path / "out", report=notes.append)
    assert notes[0].startswith("format: voc (4 VOC .xml file(s) in ANNOTATIONS/")
    assert (f"not imported: Validation_Annotations/ (4 .xml, images: {repo / 'Validation_Images'}), "
            f"run `midg data import auto {repo / 'Validation_Annotations'}` for it") in notes[0]
    lower = import_voc(repo / "ANNOTATIONS", repo / "IMAGES", tmp_path / "direct")
    assert _all_boxes(ds) == _all_boxes(lower)
    held_out = import_auto(repo / "Validation_Annotations", tmp_path / "held_out")
    assert _all_boxes(held_out) == _all_boxes(lower)  # the images came from Validation_Images/


def test_voc_and_its_yolo_copy_agree_only_with_a_faithful_converter(tmp_path):
    """VOC pixels are 1-based and inclusive: xmin=5 is the 5th column, x1=4 from 0. A converter
    that forgets the minus one shifts every box's x1/y1 by one pixel (docs/importing.md)."""
    write_voc_set(tmp_path / "voc")
    voc = import_voc(tmp_path / "voc" / "Annotations", tmp_path / "voc" / "JPEGImages", tmp_path / "v",
                     empty_as="background")
    for faithful in (True, False):
        root = tmp_path / f"yolo_{faithful}"
        for name, (h, w), boxes in VOC_IMAGES:
            shutil.copy(tmp_path / "voc" / "JPEGImages" / name, (root / "images").mkdir(parents=True, exist_ok=True)
                        or root / "images" / name)
            shifted = [b if faithful else Box(b.cls, b.x1 + 1, b.y1 + 1, b.x2, b.y2) for b in boxes]  # xmin, not xmin-1
            (root / "labels").mkdir(exist_ok=True)
            (root / "labels" / f"{Path(name).stem}.txt").write_text("".join(yolo_line(b, w, h) for b in shifted))
        (root / "data.yaml").write_text(f"train: images\nnames: {VOC_NAMES}\n")
        yolo = import_yolo(root, tmp_path / f"y_{faithful}")
        v, y = _all_boxes(voc), _all_boxes(yolo)
        for name in y:
            for bv, by in zip(v[name][:len(y[name])], y[name]):
                d = np.subtract(by[1:], bv[1:]).round(3).tolist()
                assert d == ([0, 0, 0, 0] if faithful else [1, 1, 0, 0])


def test_auto_refuses_several_datasets_and_names_them(tmp_path):
    repo = tmp_path / "repo"
    write_yolo_dataset(repo / "yolo")
    write_voc_set(repo / "voc")
    with pytest.raises(DatasetError, match=r"2 datasets found, import one: voc at .*voc \(.*; yolo at .*yolo \("):
        import_auto(repo, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty" / "docs").mkdir(parents=True)
    (tmp_path / "empty" / "README.md").write_text("nothing here")
    with pytest.raises(DatasetError, match="no known dataset format here or in its sub-folders"):
        import_auto(tmp_path / "empty", tmp_path / "out")


def test_yolo_background_images_as_normals_and_for_generate(tmp_path, capsys):
    src = write_yolo_dataset(tmp_path / "src")  # bg.png has no label file
    ds = import_yolo(src, tmp_path / "bg")
    assert ds.normals == [] and ds.counts()["train"]["background_images"] == 1
    folder, files = list_normals(tmp_path / "bg")
    assert folder == tmp_path / "bg" and [p.name for p in files] == ["bg.png"]
    assert "has no normals/: painting on its 1 background image(s)" in capsys.readouterr().err
    ds = import_yolo(src, tmp_path / "nm", empty_as="normal")
    assert [Path(p).name for p in ds.normals] == ["bg.png"] and ds.counts()["train"]["background_images"] == 0
    assert [p.name for p in list_normals(tmp_path / "nm")[1]] == ["bg.png"]
    (src / "images" / "train" / "bg.png").unlink()
    import_yolo(src, tmp_path / "none")
    with pytest.raises(DatasetError, match="no normals/ and no background images"):
        list_normals(tmp_path / "none")


def _cli_args(fmt: str, tmp_path: Path) -> list[str]:
    if fmt == "yolo":
        return ["yolo", str(write_yolo_dataset(tmp_path / "src"))]
    if fmt == "coco":
        ann, images = write_coco_dataset(tmp_path / "src")
        return ["coco", str(ann), str(images)]
    if fmt == "voc":
        ann, img = write_voc_set(tmp_path / "src")
        return ["voc", str(ann), str(img)]
    if fmt == "labelme":
        from test_import_labelme import write_labelme
        return ["labelme", str(write_labelme(tmp_path / "src"))]
    if fmt == "masks":
        return ["masks", str(write_tile_repo(tmp_path / "src"))]
    return ["auto", str(write_yolo_dataset(tmp_path / "src" / "Datasets").parent)]


@pytest.mark.parametrize("fmt, own_normals", [("yolo", 0), ("coco", 0), ("voc", 1), ("labelme", 1), ("masks", 2),
                                              ("auto", 0)])
def test_every_importer_takes_normals(tmp_path, fmt, own_normals):
    normals = tmp_path / "clean"
    for k in range(2):
        write_image(normals / f"clean{k}.jpg", 20, 20, seed=30 + k)
    write_image(normals / "sub" / "deeper.jpg", 20, 20, seed=40)  # sub-folders are not read
    r = CliRunner().invoke(app, ["data", "import", *_cli_args(fmt, tmp_path), str(tmp_path / "out"),
                                 "--normals", str(normals)])
    assert r.exit_code == 0, r.output
    ds = check_dataset(tmp_path / "out")
    assert len(ds.normals) == own_normals + 2
    assert {"clean0.jpg", "clean1.jpg"} <= {Path(p).name for p in ds.normals}
    r = CliRunner().invoke(app, ["data", "import", *_cli_args(fmt, tmp_path / "again"), str(tmp_path / "bad"),
                                 "--normals", str(tmp_path / "missing")])
    assert r.exit_code != 0 and "normals folder does not exist" in str(r.exception)
    assert not (tmp_path / "bad").exists()


def test_coco_empty_as_normal(tmp_path):
    ann, images = write_coco_dataset(tmp_path / "src")  # 2.jpg has no annotations
    r = CliRunner().invoke(app, ["data", "import", "coco", str(ann), str(images), str(tmp_path / "out"),
                                 "--empty-as", "normal"])
    assert r.exit_code == 0, r.output
    ds = load_dataset(tmp_path / "out")
    assert [Path(p).name for p in ds.normals] == ["2.jpg"] and ds.counts()["train"]["background_images"] == 0


def test_two_folder_masks_empty_masks_specks_and_unmasked(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for k in range(4):
        write_image(images / f"im{k}.png", 20, 20, seed=k)
    _mask(masks / "im0.png", 20, 20, [(2, 2, 8, 8), (15, 15, 16, 18)])  # a blob and a 3-px speck
    _mask(masks / "im1.png", 20, 20)  # empty: an unlabelled defect image
    _mask(masks / "im2.png", 20, 20, [(1, 1, 2, 2)])  # only a speck
    notes: list[str] = []
    ds = import_masks(images, masks, tmp_path / "out", split=NO_SPLIT, report=notes.append)  # im3: no mask
    assert _all_boxes(ds) == {"im0.png": [("defect", 2, 2, 8, 8)], "im3.png": []}
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())["masks"]
    assert meta["unlabelled_defect_images"] == ["im1.png", "im2.png"] and meta["components_below_min_area"] == 2
    assert any("2 image(s) whose masks are empty or only specks (skipped" in n for n in notes)
    ds = import_masks(images, masks, tmp_path / "n", split=NO_SPLIT, empty_as="normal", empty_mask="normal")
    assert sorted(Path(p).name for p in ds.normals) == ["im1.png", "im2.png", "im3.png"]


def write_bsdata_like(root: Path) -> Path:
    """BSData's shape: label/NAME.json with a bare imagePath, the image in data/; one file
    whose image is only embedded; a Windows-style relative path; a non-LabelMe json."""
    shape = [{"label": "Pitting", "shape_type": "polygon", "points": [[2, 3], [10, 3], [6, 9]]}]
    write_image(root / "data" / "p1.jpg", 16, 16, seed=1, channels=3)
    _json(root / "label" / "p1.json", shape, "p1.jpg")
    from data_builders import jpeg_bytes
    _json(root / "label" / "p2.json", shape, "p2.jpg", data=jpeg_bytes(16, 16, 2))  # not on disk: embedded
    write_image(root / "data" / "p3.jpg", 16, 16, seed=3, channels=3)
    _json(root / "label" / "p3.json", shape, "..\\data\\p3.jpg")
    (root / "label" / "classes.json").write_text(json.dumps({"names": ["Pitting"]}))
    (root / "image_data.json").write_text(json.dumps({"images": []}))
    return root


def test_labelme_images_in_data_folder_beside_labels(tmp_path):
    root = write_bsdata_like(tmp_path / "BSData")
    normals = tmp_path / "normals"
    write_image(normals / "n.jpg", 16, 16, seed=5, channels=3)
    notes: list[str] = []
    ds = import_labelme(root / "label", tmp_path / "out", normals=normals, report=notes.append)
    prov = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert {k: v["embedded"] for k, v in prov["provenance"]["files"].items()} == {
        "images/train/p1.jpg": False, "images/train/p2.jpg": True, "images/train/p3.jpg": False}
    assert (tmp_path / "out" / "images" / "train" / "p1.jpg").read_bytes() == (root / "data" / "p1.jpg").read_bytes()
    assert prov["labelme"]["not_labelme"] == ["classes.json"] and [Path(p).name for p in ds.normals] == ["n.jpg"]
    assert any("2 image(s) found on disk, 1 from the embedded imageData" in n for n in notes)
    # auto from the dataset's root: LabelMe under label/
    notes = []
    ds = import_auto(root, tmp_path / "auto", report=notes.append, normals=normals)
    assert notes[1].startswith(f"found at: {root / 'label'}") and ds.counts()["train"]["boxes"] == 3
    # an imagePath leading out of the dataset is never read, even when the file exists
    write_image(tmp_path / "secret.png", 16, 16, seed=7)
    _json(root / "label" / "p4.json", [], "../../secret.png")
    with pytest.raises(DatasetError, match="p4.json: no image: imagePath '../../secret.png'"):
        import_labelme(root / "label", tmp_path / "out3")


@pytest.mark.skipif(not (BSDATA / "label").is_dir(), reason=f"BSData not present at {BSDATA} (see its SOURCE.md)")
def test_bsdata_labelme_import_with_normals(tmp_path):
    normals = tmp_path / "normals"
    normals.mkdir()
    early = sorted(p for p in (BSDATA / "data").glob("01_200828*.jpg"))[:3]  # before any pitting began
    for p in early:
        shutil.copy(p, normals / p.name)
    r = CliRunner().invoke(app, ["data", "import", "labelme", str(BSDATA / "label"), str(tmp_path / "out"),
                                 "--normals", str(normals)])
    assert r.exit_code == 0, r.output
    ds = load_dataset(tmp_path / "out")
    assert ds.names == ["Pitting"] and len(ds.normals) == 3
    assert ds.counts()["train"]["images"] == 394 and ds.counts()["train"]["boxes"] == 485  # SOURCE.md's counts
    assert "394 image(s) found on disk, 0 from the embedded imageData" in r.output.replace("\n", " ")
