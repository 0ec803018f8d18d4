"""DeepPCB import: every box kept, fixed split, templates as normals (test ones kept out),
JPEG bytes untouched. The real-data tests use the session's `deeppcb_canonical` import;
the fake-folder tests run everywhere."""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from data_builders import write_fake_deeppcb
from midg.datasets.deeppcb import DEEPPCB_COMMIT, parse_annotation, read_pair_list, split_trainval
from midg.datasets.layout import DEFECT_CLASSES, load_dataset


def _raw_counts(annotation_files: list[Path]) -> Counter:
    """Per-class box counts straight from the text, independent of the importer."""
    counts: Counter = Counter()
    for f in annotation_files:
        for line in f.read_text().replace(",", " ").splitlines():
            if line.split():
                counts[DEFECT_CLASSES[int(line.split()[4]) - 1]] += 1
    return counts


def _split_counts(ds, *splits) -> Counter:
    return Counter(ds.names[b.cls] for s in splits for e in ds.images(s) for b in e.boxes)


@pytest.mark.deeppcb
def test_every_box_is_kept_per_class_and_split(deeppcb_root, deeppcb_canonical):
    ds = deeppcb_canonical
    pcb = deeppcb_root / "PCBData"
    trainval = [p.annotation for p in read_pair_list(pcb / "trainval.txt")]
    test = [p.annotation for p in read_pair_list(pcb / "test.txt")]
    assert [len(ds.images(s)) for s in ("train", "val", "test")] == [900, 100, 500]
    assert _split_counts(ds, "train", "val") == _raw_counts(trainval)
    assert _split_counts(ds, "test") == _raw_counts(test)
    assert sum(_raw_counts(trainval + test).values()) == 10013
    assert ds.meta["counts"] == ds.counts()


@pytest.mark.deeppcb
def test_test_boxes_match_upstream_ground_truth_zip(deeppcb_root, deeppcb_canonical):
    """evaluation/gt.zip is upstream's own copy of the test labels: an independent check."""
    ours = {Path(e.file).stem: sorted((b.cls + 1, *map(int, b.xyxy())) for b in e.boxes)
            for e in deeppcb_canonical.images("test")}
    with zipfile.ZipFile(deeppcb_root / "evaluation" / "gt.zip") as zf:
        theirs = {Path(n).stem: sorted((int(t), int(x1), int(y1), int(x2), int(y2))
                                       for x1, y1, x2, y2, t in (ln.replace(",", " ").split()
                                                                 for ln in zf.read(n).decode().splitlines() if ln.strip()))
                  for n in zf.namelist() if n.endswith(".txt")}
    assert ours == theirs


@pytest.mark.deeppcb
def test_templates_bytes_and_pairs(deeppcb_root, deeppcb_canonical):
    ds = deeppcb_canonical
    assert len(ds.normals) == 1000
    trainval_stems = {Path(e.file).stem for s in ("train", "val") for e in ds.images(s)}
    assert {Path(n).name.removesuffix("_temp.jpg") for n in ds.normals} == trainval_stems
    pairs = ds.meta["pairs"]
    assert len(pairs) == 1500
    for e in ds.images("test"):
        assert e.template == f"templates/test/{Path(e.file).stem}_temp.jpg"
        assert not e.template.startswith("normals/")
    for e in ds.images("train")[:3] + ds.images("test")[:3]:
        stem = Path(e.file).stem
        group = next((deeppcb_root / "PCBData").glob(f"group*/*/{stem}_test.jpg"))
        assert ds.path(e.file).read_bytes() == group.read_bytes()
        assert ds.path(e.template).read_bytes() == group.with_name(f"{stem}_temp.jpg").read_bytes()
    assert ds.meta["deeppcb"]["commit"] == DEEPPCB_COMMIT


@pytest.mark.deeppcb
def test_import_loads_in_pycocotools_and_checks(deeppcb_canonical):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(deeppcb_canonical.root / "annotations" / "test.json"))
    assert len(coco.getImgIds()) == 500 and len(coco.getAnnIds()) == 3140
    assert [c["name"] for c in coco.loadCats(sorted(coco.getCatIds()))] == list(DEFECT_CLASSES)
    again = load_dataset(deeppcb_canonical.root, check_images=True)
    assert again.counts() == deeppcb_canonical.counts()


def test_val_split_is_seeded_and_order_free():
    stems = [f"{i:08d}" for i in range(1000)]
    val = split_trainval(stems, seed=0)
    assert len(val) == 100
    assert split_trainval(list(reversed(stems)), seed=0) == val
    assert split_trainval(stems, seed=1) != val


def test_annotations_with_commas_and_no_final_newline(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"1,2,30,40,1\r\n5 6 7 8 6")
    boxes = parse_annotation(f, 640, 640)
    assert [(b.cls, b.xyxy()) for b in boxes] == [(0, [1, 2, 30, 40]), (5, [5, 6, 7, 8])]


def test_fake_deeppcb_imports_every_box_via_cli(tmp_path):
    from typer.testing import CliRunner

    from midg.pipelines.cli import app

    src = write_fake_deeppcb(tmp_path / "DeepPCB")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["data", "import", "deeppcb", str(src), str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    ds = load_dataset(out, check_images=True)
    assert sorted(Path(e.file).name for e in ds.images("train")) == ["00001000.jpg", "00001001.jpg"]
    assert [Path(e.file).name for e in ds.images("test")] == ["00001002.jpg"]
    assert _split_counts(ds, "train") == Counter({"open": 1, "pin-hole": 1, "mousebite": 1, "short": 1})
    assert _split_counts(ds, "test") == Counter({"spur": 1, "copper": 1})
    assert ds.normals == ["normals/00001000_temp.jpg", "normals/00001001_temp.jpg"]
    assert ds.meta["seed"] == 3
    assert "imported DeepPCB" in result.output and "pin-hole" in result.output  # the counts table


def test_download_builds_the_pinned_url_and_imports(tmp_path, monkeypatch):
    """The network call is replaced by a zip built here; nothing leaves the machine."""
    from midg.datasets import download

    fake = write_fake_deeppcb(tmp_path / "DeepPCB")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"DeepPCB-{DEEPPCB_COMMIT}/README.md", "readme")
        for p in sorted(fake.rglob("*")):
            if p.is_file():
                zf.write(p, f"DeepPCB-{DEEPPCB_COMMIT}/{p.relative_to(fake).as_posix()}")
    asked = []

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(archive.getvalue()))}

    def opener(url, timeout):
        asked.append(url)
        return Response(archive.getvalue())

    assert download.deeppcb_zip_url() == (
        "https://github.com/tangsanli5201/DeepPCB/archive/08e98c4db5922613fb97176eb3d6497d48260cb1.zip")
    ds = download.download_deeppcb(tmp_path / "out" / "deeppcb", opener=opener)
    assert asked == [download.deeppcb_zip_url()]
    assert len(ds.images("train")) == 2 and len(ds.images("test")) == 1
    assert ds.meta["deeppcb"]["origin"] == download.deeppcb_zip_url()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["deeppcb"]  # temp folder gone


def test_download_refuses_archive_members_that_escape(tmp_path):
    from midg.datasets.download import extract_pcbdata
    from midg.datasets.errors import DatasetError

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("DeepPCB-x/PCBData/../../evil.txt", "x")
    with pytest.raises(DatasetError, match="outside"):
        extract_pcbdata(bad, tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists()


def test_same_seed_same_bytes(tmp_path):
    from midg.datasets.deeppcb import import_deeppcb

    src = write_fake_deeppcb(tmp_path / "DeepPCB")
    files = lambda r: {p.relative_to(r).as_posix(): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()}  # noqa: E731
    import_deeppcb(src, tmp_path / "a", seed=0)
    import_deeppcb(src, tmp_path / "b", seed=0)
    assert files(tmp_path / "a") == files(tmp_path / "b")
