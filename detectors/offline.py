"""Make ultralytics work with no network at all, and leave torch's threads alone.

Call `ultralytics_offline(RUN_DIR / "ultralytics_config")` before the first
`import ultralytics` in a process (every adapter here does); it returns the module.

What it does, and why (each was seen reaching for the network or the user's home here):
- `YOLO_OFFLINE=true` makes `is_online()` answer False without a DNS lookup, so the
  import-time checks, the pip update check and the analytics events stay silent;
  `YOLO_AUTOINSTALL=false` stops `pip install` attempts for missing extras.
- `YOLO_CONFIG_DIR` is run-local, so settings.json is written beside the run, not in ~.
- Every train/val/plot asks `check_font("Arial.ttf")`, which downloads the font when it
  is missing: matplotlib's DejaVuSans.ttf is copied to Arial.ttf (and Arial.Unicode.ttf).
- The settings `sync` and the logger integrations (dvc, mlflow, wandb, ...) are turned
  off: each would otherwise try to talk to a server or write into the project.
- On CUDA the trainer's AMP check loads yolo26n.pt, which is not here, so it tries a
  download (a DNS lookup, seen on the H200) before it logs "checks skipped" and keeps AMP
  on. `_check_amp_offline` replaces that check in the trainer: AMP stays on for CUDA,
  nothing is fetched; on a GPU where AMP misbehaves (ultralytics lists GTX 16xx) set
  `amp: false` in the detector config.
- Importing ultralytics sets `OMP_NUM_THREADS=1` when unset; torch in the same process
  would then run Faster R-CNN on one thread. The thread count and the variable are put
  back as they were (`restore_torch_threads` does the same after a CPU train, where
  ultralytics calls `torch.set_num_threads` itself).

ultralytics reads YOLO_CONFIG_DIR once, at import: a second call in the same process
(tests, `midg run`) keeps the first folder and only makes sure the fonts are still there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

# Settings that make ultralytics call out or write elsewhere; names missing in an older or
# newer ultralytics are skipped (its SettingsManager refuses unknown keys).
_SETTINGS_OFF = ("sync", "hub", "dvc", "mlflow", "wandb", "clearml", "comet", "neptune", "raytune",
                 "tensorboard", "vscode_msg", "openvino_msg")
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def _dejavu_font() -> Path:
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not font.is_file():  # pragma: no cover - matplotlib always ships it
        raise FileNotFoundError(f"matplotlib's DejaVuSans.ttf is missing ({font}): cannot stand in for Arial offline")
    return font


def install_fonts(folder: Path) -> None:
    """Put the fonts ultralytics would download into `folder` (its USER_CONFIG_DIR)."""
    folder.mkdir(parents=True, exist_ok=True)
    src = _dejavu_font()
    for name in _FONT_NAMES:
        dst = folder / name
        if not dst.is_file():
            shutil.copyfile(src, dst)


def restore_torch_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _check_amp_offline(model) -> bool:
    """The trainer's AMP check without its download: AMP on CUDA, off elsewhere."""
    from ultralytics.utils import LOGGER

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    LOGGER.info("AMP: ultralytics' check skipped offline (it downloads yolo26n.pt); AMP stays on. "
                "Set amp: false in the detector config if losses turn NaN.")
    return True


def ultralytics_offline(config_dir: Path) -> ModuleType:
    """Prepare the environment, import ultralytics offline and return the module."""
    import torch  # first, so its thread pool is sized before ultralytics touches OMP_NUM_THREADS

    threads = torch.get_num_threads()
    omp_before = os.environ.get("OMP_NUM_THREADS")
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    already = "ultralytics" in sys.modules
    if not already:
        config_dir = Path(config_dir).resolve()
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
        install_fonts(config_dir / "Ultralytics")  # before import: the import may plot nothing, but be safe

    import ultralytics
    import ultralytics.engine.trainer as trainer_module
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    trainer_module.check_amp = _check_amp_offline

    # The folder ultralytics actually uses (the first call's, when it was imported before).
    install_fonts(Path(USER_CONFIG_DIR))
    wanted = {k: False for k in _SETTINGS_OFF if k in SETTINGS.defaults and SETTINGS.get(k) is not False}
    if wanted:
        SETTINGS.update(wanted)

    if omp_before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp_before
    restore_torch_threads(threads)
    return ultralytics
