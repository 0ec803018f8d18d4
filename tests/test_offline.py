"""ultralytics offline for real (detectors/offline.py): env, fonts, settings, torch threads."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from _detector_data import no_network  # noqa: F401  (fixture)
from midg.detectors.offline import install_fonts, ultralytics_offline


def test_fonts_are_copied_not_downloaded(tmp_path):
    install_fonts(tmp_path / "Ultralytics")
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        font = tmp_path / "Ultralytics" / name
        assert font.read_bytes()[:4] in (b"\x00\x01\x00\x00", b"true")  # a TrueType file


def test_import_is_offline_and_keeps_torch_threads(tmp_path, no_network):
    threads = torch.get_num_threads()
    omp = os.environ.get("OMP_NUM_THREADS")
    ul = ultralytics_offline(tmp_path / "cfg")
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR, is_online
    from ultralytics.utils.checks import check_font

    assert os.environ["YOLO_OFFLINE"] == "true" and os.environ["YOLO_AUTOINSTALL"] == "false"
    assert not is_online()
    # The config folder in use (this test's, or the first one of this process) has the fonts,
    # and check_font finds them there instead of downloading.
    assert Path(check_font("Arial.ttf")) == Path(USER_CONFIG_DIR) / "Arial.ttf"
    assert (Path(USER_CONFIG_DIR) / "Arial.Unicode.ttf").is_file()
    for key in ("sync", "dvc", "mlflow", "wandb", "clearml", "comet", "raytune", "tensorboard"):
        if key in SETTINGS.defaults:
            assert SETTINGS[key] is False, key
    assert torch.get_num_threads() == threads
    assert os.environ.get("OMP_NUM_THREADS") == omp
    assert ul.__version__
    assert no_network == []  # nothing even tried


def test_settings_stay_in_the_run_local_folder(tmp_path):
    ultralytics_offline(tmp_path / "cfg")
    from ultralytics.utils import SETTINGS

    # Never the user's home: the settings file lives in a YOLO_CONFIG_DIR that midg chose.
    assert Path(os.environ["YOLO_CONFIG_DIR"]) in Path(SETTINGS.file).parents
    assert not str(SETTINGS.file).startswith(str(Path.home() / ".config"))
