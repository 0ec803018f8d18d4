"""Detector adapters: train at the smoke profile, predict, score with the one evaluator, offline.

Fast tests train a handful of steps at 64 px; the slow one trains YOLOv8n on demo boards
for about 1.5 min and checks the score and ultralytics' own val against ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _detector_data import make_demo_or_toy, make_toy_dataset, no_network, snapshot  # noqa: F401
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.layout import load_dataset
from midg.detectors import faster_rcnn as frcnn
from midg.detectors.base import predict, train
from midg.detectors.config import DetectorConfig, load_detector_config
from midg.detectors.evaluate import evaluate_split
from midg.detectors.view import build_view, load_datasets

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_or_toy(tmp_path_factory.mktemp("det") / "demo", n_images=16, size=64)


def smoke(detector: str, **over) -> DetectorConfig:
    return load_detector_config(PARAMS, "smoke", detector, **over)


def _check_preds(preds_json: Path, dataset: Path, split: str = "test") -> list[dict]:
    preds = json.loads(preds_json.read_text())
    gt = json.loads((dataset / "annotations" / f"{split}.json").read_text())
    ids = {im["id"] for im in gt["images"]}
    cats = {c["id"] for c in gt["categories"]}
    assert all(p["image_id"] in ids and p["category_id"] in cats for p in preds)
    assert all(len(p["bbox"]) == 4 and p["bbox"][2] >= 0 and p["bbox"][3] >= 0 and 0 <= p["score"] <= 1 for p in preds)
    return preds


@pytest.mark.parametrize("detector", ["yolov8n", "yolov5nu", "faster_rcnn", "faster_rcnn_r18"])
def test_smoke_train_predict_evaluate_offline(detector, demo, tmp_path, no_network):
    before = snapshot(demo)
    cfg = smoke(detector)
    run = train(detector, [demo], tmp_path / "run", cfg)
    preds_json = predict(run, demo, "test", tmp_path / "preds.json")
    metrics = evaluate_split(demo, "test", preds_json, tmp_path / "metrics.json")

    assert no_network == []  # not one connection, DNS lookup included, was even tried
    assert snapshot(demo) == before  # training wrote nothing into the dataset (no labels/*.cache)
    assert not list(demo.rglob("*.cache"))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["detector"] == detector
    assert meta["steps_done"] == cfg.steps and meta["batch"] == cfg.batch == 4
    # both read the seeded step plan (detectors/mixing.py): every batch is full
    assert meta["images_seen"] == cfg.steps * cfg.batch
    assert meta["seed"] == 0 and meta["versions"]["torch"] and meta["data_dirs"] == [str(demo.resolve())]
    assert (run / meta["weights"]).is_file()
    preds = _check_preds(preds_json, demo)
    if detector.startswith("faster"):
        assert preds  # 7-way softmax scores stay above conf 0.001 from the first step
        assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pth"))  # safetensors + json only
    assert metrics["counts"]["predictions"] == len(preds)
    for key in ("map50", "map50_95", "map33"):
        assert 0.0 <= metrics[key] <= 1.0


def test_prediction_ids_follow_the_annotations_by_file_name(tmp_path, monkeypatch):
    """image_id comes from annotations/{split}.json by file name, whatever the names look like."""
    ds = make_toy_dataset(tmp_path / "toy", n_train=4, n_val=2, n_test=4, size=64)
    names = ["7", "b 2", "0001", "ünï"]  # numeric stems that are not the ids, spaces, non-ASCII
    ann = ds / "annotations" / "test.json"
    doc = json.loads(ann.read_text())
    new_ids = [90, 17, 3, 55]
    old_to_new = {}
    for im, name, new_id in zip(doc["images"], names, new_ids):
        stem = Path(im["file_name"]).stem
        for sub, ext in (("images", ".png"), ("labels", ".txt")):
            (ds / sub / "test" / f"{stem}{ext}").rename(ds / sub / "test" / f"{name}{ext}")
        old_to_new[im["id"]] = new_id
        im["file_name"], im["id"] = f"{name}.png", new_id
    for a in doc["annotations"]:
        a["image_id"] = old_to_new[a["image_id"]]
    ann.write_text(json.dumps(doc))
    entries = load_dataset(ds).images("test")
    id_of = {Path(e.file).name: e.image_id for e in entries}

    # A stand-in backend whose box encodes which file it saw: x1 = index in the list it was given.
    from midg.detectors import base

    seen = []

    def fake_predict(spec, run_dir, meta, paths, cfg):
        seen.extend(paths)
        return [[(0, float(i), 1.0, float(i) + 5, 6.0, 0.9)] for i in range(len(paths))]

    monkeypatch.setattr(frcnn, "predict_images", fake_predict)
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"kind": base.RUN_KIND, "status": "finished", "detector": "faster_rcnn",
                                               "names": ["bright", "dark"], "config": {}, "weights": "w"}))
    preds = json.loads(predict(run, ds, "test", tmp_path / "p.json").read_text())
    assert len(preds) == 4
    for p in preds:
        assert p["image_id"] == id_of[seen[int(p["bbox"][0])].name]
        assert p["category_id"] == 1  # class 0 -> category 1
    assert sorted(p["image_id"] for p in preds) == sorted(new_ids)


def test_faster_rcnn_r18_keeps_the_fine_levels_small_defects_need():
    """At the demo's 256 px the ResNet-18 variant has maps at strides 4..32 with anchors scaled
    by anchor_scale; torchvision's MobileNetV3 FPN (why the demo left it) has stride 32 only."""
    from midg.detectors.base import get_spec

    x = torch.zeros(1, 3, 256, 256)
    cfg = smoke("faster_rcnn_r18", imgsz=256, anchor_scale=0.125)
    model = frcnn.build_model(get_spec("faster_rcnn_r18"), 6, cfg).eval()
    with torch.no_grad():
        sides = [f.shape[-1] for f in model.backbone(x).values()]
    assert sides == [64, 32, 16, 8]  # strides 4, 8, 16, 32
    assert model.rpn.anchor_generator.sizes == ((4,), (8,), (16,), (32,))
    assert model.roi_heads.box_predictor.cls_score.out_features == 6 + frcnn.LABEL_OFFSET
    assert all(isinstance(m, torch.nn.BatchNorm2d) for n, m in model.backbone.body.named_modules() if "bn" in n)
    mobile = frcnn.build_model(get_spec("faster_rcnn_mobilenet"), 6, smoke("faster_rcnn_mobilenet", imgsz=256)).eval()
    with torch.no_grad():
        assert max(f.shape[-1] for f in mobile.backbone(x).values()) == 8


def test_faster_rcnn_resume_continues_exactly(demo, tmp_path, monkeypatch):
    """Interrupted after a checkpoint and resumed = trained without a break (CPU, same seed)."""
    from safetensors.torch import load_file

    cfg = smoke("faster_rcnn_mobilenet", steps=4)
    whole = train("faster_rcnn_mobilenet", [demo], tmp_path / "whole", cfg)

    real_step, calls = frcnn.train_one_step, []

    def dies_at_step_3(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # like Ctrl-C after the step-2 checkpoint
        return real_step(*a, **k)

    monkeypatch.setattr(frcnn, "train_one_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train("faster_rcnn_mobilenet", [demo], tmp_path / "cut", cfg)
    monkeypatch.setattr(frcnn, "train_one_step", real_step)
    meta = json.loads((tmp_path / "cut" / "meta.json").read_text())
    assert meta["status"] == "running"
    with pytest.raises(DatasetError, match="not finished"):
        predict(tmp_path / "cut", demo, "test", tmp_path / "x.json")
    cut = train("faster_rcnn_mobilenet", [demo], tmp_path / "cut", cfg, resume=True)

    meta = json.loads((cut / "meta.json").read_text())
    assert meta["resumed_at_step"] == 2 and meta["steps_done"] == 4 and meta["status"] == "finished"
    a, b = load_file(str(whole / frcnn.WEIGHTS)), load_file(str(cut / frcnn.WEIGHTS))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (cut / "results.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "1", "2", "3", "4"]
    # resuming a finished run does nothing; resuming with another budget is refused
    assert train("faster_rcnn_mobilenet", [demo], cut, cfg, resume=True) == cut
    with pytest.raises(ConfigError, match="steps"):
        train("faster_rcnn_mobilenet", [demo], cut, smoke("faster_rcnn_mobilenet", steps=5), resume=True)


def test_yolo_resume_from_last_pt(demo, tmp_path, monkeypatch):
    from midg.detectors import yolo

    per_epoch = 3
    cfg = smoke("yolov8n", steps=per_epoch + 2, epoch_steps=per_epoch)  # two epochs, the second cut short by the budget
    real = yolo.StepBudget.on_train_batch_end

    def dies_in_epoch_2(self, trainer):
        real(self, trainer)
        if self.steps_done == per_epoch + 1 and trainer.start_epoch == 0:
            raise KeyboardInterrupt  # epoch 1 is saved in last.pt

    monkeypatch.setattr(yolo.StepBudget, "on_train_batch_end", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train("yolov8n", [demo], tmp_path / "run", cfg)
    monkeypatch.setattr(yolo.StepBudget, "on_train_batch_end", real)
    run = train("yolov8n", [demo], tmp_path / "run", cfg, resume=True)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["resumed_from_epoch"] == 1 and meta["steps_done"] == per_epoch + 2 and meta["status"] == "finished"


def test_yolo_kill_while_saving_keeps_the_previous_checkpoint(demo, tmp_path, monkeypatch):
    """A kill mid-write of last.pt (CI met it) leaves epoch 1's whole file, and resume uses it;
    a damaged last.pt (from before atomic saves) makes training start over instead of failing."""
    import pathlib
    import shutil

    per_epoch = 3
    cfg = smoke("yolov8n", steps=per_epoch + 2, epoch_steps=per_epoch)
    real_write = pathlib.Path.write_bytes
    saves = []

    def killed_on_second_save(self, data):
        if "last.pt" in self.name:
            saves.append(self.name)
            if len(saves) == 2:
                real_write(self, data[: len(data) // 2])
                raise KeyboardInterrupt
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", killed_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        train("yolov8n", [demo], tmp_path / "run", cfg)
    monkeypatch.setattr(pathlib.Path, "write_bytes", real_write)
    weights = tmp_path / "run" / "train" / "weights"
    assert "last.pt" in {p.name for p in weights.iterdir()}
    assert not [p.name for p in weights.iterdir() if p.name.endswith(".partial")]  # nothing half-written left
    shutil.copytree(tmp_path / "run", tmp_path / "damaged")
    last = tmp_path / "damaged" / "train" / "weights" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])

    meta = json.loads((train("yolov8n", [demo], tmp_path / "run", cfg, resume=True) / "meta.json").read_text())
    assert meta["resumed_from_epoch"] == 1 and meta["steps_done"] == per_epoch + 2
    meta = json.loads((train("yolov8n", [demo], tmp_path / "damaged", cfg, resume=True) / "meta.json").read_text())
    assert meta["resumed_from_epoch"] is None and meta["steps_done"] == per_epoch + 2 and meta["status"] == "finished"


def test_same_seed_same_predictions_yolo(demo, tmp_path):
    """ultralytics on CPU with deterministic=True and a fixed seed: same bytes twice."""
    out = []
    for k in range(2):
        run = train("yolov8n", [demo], tmp_path / f"run{k}", smoke("yolov8n"))
        out.append(predict(run, demo, "test", tmp_path / f"p{k}.json").read_bytes())
    assert out[0] == out[1]


def test_local_weights_files(demo, tmp_path):
    """--weights: a torchvision state_dict (weights_only load) and an ultralytics .pt of our own."""
    cfg = smoke("faster_rcnn_mobilenet", steps=1)
    spec = frcnn.DetectorSpec("faster_rcnn_mobilenet", "torchvision", "fasterrcnn_mobilenet_v3_large_fpn", "")
    donor = frcnn.build_model(spec, 2, cfg)  # another class count: the box predictor will not match
    torch.save({"model": donor.state_dict()}, tmp_path / "donor.pth")
    run = train("faster_rcnn_mobilenet", [demo], tmp_path / "fr", cfg, weights=tmp_path / "donor.pth")
    assert json.loads((run / "meta.json").read_text())["init_weights"] == str(tmp_path / "donor.pth")
    with pytest.raises(DatasetError, match="does not exist"):
        train("faster_rcnn_mobilenet", [demo], tmp_path / "fr2", cfg, weights=tmp_path / "missing.pt")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(DatasetError, match="junk.pth"):
        train("faster_rcnn_mobilenet", [demo], tmp_path / "fr3", cfg, weights=tmp_path / "junk.pth")


def test_view_links_images_and_lists_every_train_dir(tmp_path):
    a = make_toy_dataset(tmp_path / "a", n_train=3, n_val=2, n_test=1, size=32)
    b = make_toy_dataset(tmp_path / "b", n_train=2, n_val=1, n_test=1, size=32, seed=1, prefix="syn")
    view = build_view(load_datasets([a, b]), tmp_path / "run" / "data")
    import yaml

    doc = yaml.safe_load(view.yaml.read_text())
    assert doc["train"] == [str(view.root / "0" / "images" / "train"), str(view.root / "1" / "images" / "train")]
    assert doc["val"] == str(view.root / "0" / "images" / "val") and "path" not in doc
    assert view.n_train == 5 and view.names == ["bright", "dark"]
    linked = sorted((view.root / "1" / "images" / "train").iterdir())
    assert all(p.is_symlink() and p.resolve().parent == (b / "images" / "train").resolve() for p in linked)
    assert not (view.root / "1" / "images" / "val").exists()  # val/test come from the first dataset only
    labels = sorted((view.root / "0" / "labels" / "train").iterdir())
    assert [p.read_text() for p in labels] == [(a / "labels" / "train" / p.name).read_text() for p in labels]

    other = tmp_path / "c"
    from midg.datasets.boxes import Box
    from midg.datasets.layout import DatasetWriter

    with DatasetWriter(other, ["open"], source="t") as w:
        w.add_image("train", "x", array=np.zeros((32, 32), np.uint8), boxes=[Box(0, 1, 1, 9, 9)])
    with pytest.raises(DatasetError, match="class names"):
        load_datasets([a, other])


def test_config_and_run_folder_errors(demo, tmp_path):
    with pytest.raises(ConfigError, match="valid: .*yolov8n"):
        smoke("yolov9z")
    with pytest.raises(ConfigError, match="unknown detector option"):
        load_detector_config(PARAMS, "smoke", "yolov8n", stepz=3)
    with pytest.raises(ConfigError, match="unknown key"):
        DetectorConfig(per_detector={"yolov8n": {"bach": 2}})
    with pytest.raises(ConfigError, match="multiple of 32"):
        DetectorConfig(imgsz=100)
    with pytest.raises(ConfigError, match="no CUDA|not one of"):
        train("yolov8n", [demo], tmp_path / "r", smoke("yolov8n", device="cuda" if not torch.cuda.is_available() else "gpu"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a detector run"):
        train("faster_rcnn_mobilenet", [demo], busy, smoke("faster_rcnn_mobilenet", steps=1))
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="set by midg"):
        train("yolov8n", [demo], tmp_path / "u", smoke("yolov8n", ultralytics_args={"epochs": 3}))


def test_cli_train_and_predict(demo, tmp_path):
    from typer.testing import CliRunner

    from midg.pipelines.cli import app

    runner = CliRunner()
    run, preds = tmp_path / "run", tmp_path / "preds.json"
    r = runner.invoke(app, ["detector", "train", "--detector", "faster_rcnn_mobilenet", "--data", str(demo),
                            "--out", str(run), "--profile", "smoke", "--params", str(PARAMS), "--steps", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "meta.json").read_text())["steps_done"] == 2
    r = runner.invoke(app, ["detector", "predict", "--run", str(run), "--data", str(demo), "--split", "test",
                            "--out", str(preds), "--conf", "0.2"])
    assert r.exit_code == 0, r.output
    assert all(p["score"] >= 0.2 for p in _check_preds(preds, demo))
    r = runner.invoke(app, ["detector", "train", "--detector", "nope", "--data", str(demo), "--out", str(run)])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError)


@pytest.mark.slow
def test_yolov8n_learns_demo_boards_and_agrees_with_ultralytics(tmp_path, no_network):
    """About 1.5 min of YOLOv8n on zoomed demo boards: far above an untrained model (0) on every CPU
    code path tried, and our COCO mAP50 within a few points of ultralytics' own val on the same
    weights and split."""
    from midg.detectors.yolo import ultralytics_val

    from midg.datasets.demo import make_demo_dataset

    # magnified boards (zoom 4, median defect ~21 px): learnt in 240 steps on every code path tried (below)
    data = make_demo_dataset(tmp_path / "demo", SLOW_IMAGES, seed=0, size=256, zoom=SLOW_ZOOM, progress=False).root
    # two threads, as on the project's 2-core machines: a bigger runner sums in the same order
    cfg = load_detector_config(PARAMS, "demo", "yolov8n", steps=SLOW_STEPS, threads=2)
    run = train("yolov8n", [data], tmp_path / "run", cfg)
    ours = evaluate_split(data, "test", predict(run, data, "test", tmp_path / "preds.json"))
    theirs = ultralytics_val(run, "test")
    print(f"ours mAP50 {ours['map50']:.4f} mAP50-95 {ours['map50_95']:.4f}; "
          f"ultralytics mAP50 {theirs['map50']:.4f} mAP50-95 {theirs['map50_95']:.4f}; "
          f"CPU kernels {torch.backends.cpu.get_cpu_capability()}")
    assert ours["map50"] > SLOW_MIN_MAP50
    assert abs(ours["map50"] - theirs["map50"]) < 0.05
    assert no_network == []


# Deterministic per machine, not across machines: the CPU kernels torch/oneDNN pick (AVX-512, AVX2,
# none) sum in other orders and 240 steps from scratch amplify the last bits. At zoom 3 the recipe sat
# on a cliff: mAP50 0.0953 with AVX-512 (the failing CI figure, 0.095338) and 0.4452 with AVX2 forced
# (0.4071 where the bound was tuned). At zoom 4, 2026-12-07, seed 0: AVX-512 0.4345 (ultralytics'
# own 0.4467), AVX2 0.5115, AVX-512 on 1 thread 0.4028, no SIMD (ATEN_CPU_CAPABILITY=default, oneDNN
# SSE4.1) 0.3953, AVX-512 with training seed 1 0.4699; untrained 0.0. benchmarks/learning_test_paths.py,
# benchmarks/results/learning_test_code_paths.json. At zoom 1 (defects ~9 px) 600 steps gave only
# 0.027. The bound keeps half the lowest score (0.3953) as margin.
SLOW_IMAGES, SLOW_ZOOM, SLOW_STEPS, SLOW_MIN_MAP50 = 200, 4.0, 240, 0.2
