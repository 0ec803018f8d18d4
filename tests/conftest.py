"""Shared fixtures. Keep this small: builders of test data live in data_builders.py.

- `deeppcb_root`: the local DeepPCB copy (../shared/datasets/DeepPCB or $MIDG_DEEPPCB);
  tests that need it skip with the reason when it is absent.
- `deeppcb_canonical`: DeepPCB imported once per session (seed 0) -> midg Dataset
  (900 train / 100 val / 500 test, 1000 normals). Read it, never write into it.
- `tiny_canonical`: a fresh small canonical dataset (two classes, templates, normals).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data_builders import write_tiny_canonical


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
