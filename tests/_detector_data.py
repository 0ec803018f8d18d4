"""Small detection datasets for the detector tests: the demo boards when `midg.datasets.demo`
exists, otherwise bright and dark rectangles on noise, written with DatasetWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midg.datasets.boxes import Box
from midg.datasets.layout import DatasetWriter

TOY_NAMES = ("bright", "dark")


def make_toy_dataset(out: Path, n_train: int = 16, n_val: int = 4, n_test: int = 4, size: int = 96,
                     seed: int = 0, prefix: str = "img") -> Path:
    """Gray noise with 1-3 rectangles each: class 0 bright (230), class 1 dark (20)."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(Path(out), list(TOY_NAMES), source="toy", seed=seed) as w:
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            for i in range(n):
                img = rng.normal(128, 20, (size, size)).clip(0, 255).astype(np.uint8)
                boxes = []
                for _ in range(int(rng.integers(1, 4))):
                    bw, bh = (int(v) for v in rng.integers(size // 8, size // 3, 2))
                    x1, y1 = int(rng.integers(0, size - bw)), int(rng.integers(0, size - bh))
                    cls = int(rng.integers(0, 2))
                    img[y1:y1 + bh, x1:x1 + bw] = 230 if cls == 0 else 20
                    boxes.append(Box(cls, x1, y1, x1 + bw, y1 + bh))
                w.add_image(split, f"{prefix}{split}{i:03d}", array=img, boxes=boxes)
    return Path(out)


def make_demo_or_toy(out: Path, n_images: int = 16, size: int = 64, seed: int = 0) -> Path:
    """Demo boards (the real thing) when datasets/demo.py is there, else the toy rectangles."""
    try:
        from midg.datasets.demo import make_demo_dataset
    except ImportError:
        return make_toy_dataset(out, n_train=n_images // 2, n_val=n_images // 4, n_test=n_images // 4, size=size, seed=seed)
    make_demo_dataset(out, n_images, seed=seed, size=size, progress=False)
    return Path(out)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every file and folder under `folder` with its kind, size and modification time."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = ("dir" if p.is_dir() else "file", st.st_size, st.st_mtime_ns)
    return out


class NetworkAttempts(list):
    """What the code under test tried to reach (each attempt also raised OSError)."""


@pytest.fixture
def no_network(monkeypatch) -> NetworkAttempts:
    """Make any network use impossible: connect, create_connection and getaddrinfo raise.

    Unix-domain sockets stay allowed: torch's DataLoader workers pass tensors through them
    (refusing them broke ultralytics' pin-memory thread on the GPU machine)."""
    import socket

    attempts = NetworkAttempts()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(what):
        def _refuse(*args, **kwargs):
            attempts.append((what, repr(args[:2])))
            raise OSError(f"network disabled in this test ({what})")
        return _refuse

    def guarded(real, what):
        def _connect(self, *args, **kwargs):
            if self.family == getattr(socket, "AF_UNIX", None):
                return real(self, *args, **kwargs)
            return refuse(what)(self, *args, **kwargs)
        return _connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect, "connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex, "connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return attempts
