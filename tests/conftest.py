"""Shared fixtures. Keep this small: builders of test data live in data_builders.py.

- `deeppcb_root`: the local DeepPCB copy (../shared/datasets/DeepPCB or $MIDG_DEEPPCB);
  tests that need it skip with the reason when it is absent.
- `deeppcb_canonical`: DeepPCB imported once per session (seed 0) -> midg Dataset
  (900 train / 100 val / 500 test, 1000 normals). Read it, never write into it.
- `tiny_canonical`: a fresh small canonical dataset (two classes, templates, normals).

OpenMP's idle threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE unless the caller
set a policy), in the test process and in every command a test starts, which inherit it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from midg.augment.openmp import sleep_idle_openmp_threads

# Before any test module loads torch (libgomp reads the policy once, when it loads). On the
# 2 shared cores a spinning idle thread takes the core the working one needs: the YOLOv8n
# learning test (2 threads) took 1173 s with libgomp's default and 259 s with PASSIVE on the
# same loaded machine, with the same mAP to the last digit. The policy changes no computed
# value (augment/openmp.py; tests/test_openmp.py checks it on its own fresh processes).
sleep_idle_openmp_threads()

from data_builders import write_tiny_canonical  # noqa: E402


def _deeppcb_path() -> Path:
    env = os.environ.get("MIDG_DEEPPCB")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets" / "DeepPCB"


@pytest.fixture(scope="session")
def deeppcb_root() -> Path:
    root = _deeppcb_path()
    if not (root / "PCBData" / "trainval.txt").is_file():
        pytest.skip(f"DeepPCB not found at {root} (set MIDG_DEEPPCB to its folder to run this test)")
    return root


@pytest.fixture(scope="session")
def deeppcb_canonical(deeppcb_root, tmp_path_factory):
    from midg.datasets.deeppcb import import_deeppcb

    return import_deeppcb(deeppcb_root, tmp_path_factory.mktemp("deeppcb") / "canonical", seed=0)


@pytest.fixture
def tiny_canonical(tmp_path) -> Path:
    return write_tiny_canonical(tmp_path / "tiny")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny CNNs on a shared CI machine: one thread is faster than several fighting for cores
    (use per module: `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
