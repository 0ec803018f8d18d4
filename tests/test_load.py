"""Load: `midg generate` of 10,000 images (smoke-trained checkpoint, 64-px normals) with
bounded memory and no leaked file descriptors. Opt-in: it takes minutes.

    MIDG_LOAD_TEST=1 .venv/bin/python -m pytest tests/test_load.py -q -s
    MIDG_LOAD_TEST=1 MIDG_LOAD_IMAGES=2000 .venv/bin/python -m pytest tests/test_load.py -q -s   # a shorter run

The command runs as a subprocess (one torch thread); its resident memory (VmRSS, and the
kernel's peak VmHWM) and open descriptors (/proc/PID/fd) are sampled while it works.
Asserted: it finishes, the dataset loads with every image, the peak stays under 2 GiB,
memory late in the run is within 150 MiB of memory early in it (no per-image growth
beyond the few hundred bytes of meta.json records per defect), and the descriptor count
never grows past its early level by more than a handful. Figures are printed (and written
to $MIDG_LOAD_REPORT as JSON when set); RELIABILITY.md records a run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from _reliability import PARAMS, make_boards, spawn_midg, train_smoke_generator
from midg.datasets.layout import load_dataset

N_IMAGES = int(os.environ.get("MIDG_LOAD_IMAGES", "10000"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MIDG_LOAD_TEST") != "1",
                       reason="load test: minutes of generation; run with MIDG_LOAD_TEST=1"),
]


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _in_temp(out: Path) -> int:
    return sum(sum(1 for _ in (t / "images" / "train").iterdir())
               for t in out.parent.glob(f".{out.name}.tmp-*") if (t / "images" / "train").is_dir())


def test_generate_ten_thousand_images_with_bounded_memory(tmp_path):
    boards = make_boards(tmp_path / "boards", n_images=16)
    ckpt = train_smoke_generator(boards, tmp_path / "ckpt")
    out = tmp_path / "synth"
    args = ["generate", "--checkpoint", ckpt, "--normals", boards, "--out", out, "--n-images", N_IMAGES,
            "--seed", 0, "--profile", "smoke", "--params", PARAMS]
    t0 = time.perf_counter()
    proc = spawn_midg(args, cwd=tmp_path, log=tmp_path / "generate.log")
    samples = []  # (seconds, images written, rss KiB, fds)
    last_count, written = 0.0, 0
    while proc.poll() is None:
        now = time.perf_counter() - t0
        if now - last_count > 1.0:  # counting thousands of files costs: once a second
            written, last_count = _in_temp(out), now
        rss, fds = _status_kib(proc.pid, "VmRSS"), _fds(proc.pid)
        peak = _status_kib(proc.pid, "VmHWM")
        if rss is not None and fds is not None:
            samples.append((now, written, rss, fds, peak))
        time.sleep(0.2)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, (tmp_path / "generate.log").read_text()[-3000:]
    assert len(load_dataset(out).images("train")) == N_IMAGES

    working = [s for s in samples if s[1] > 0]  # painting has begun (startup imports excluded)
    assert len(working) >= 5, f"too few samples while working: {samples[:5]}"
    early = [s for s in working if s[1] <= N_IMAGES * 0.2] or working[:3]
    late = [s for s in working if s[1] >= N_IMAGES * 0.8] or working[-3:]
    early_rss, late_rss = max(s[2] for s in early), max(s[2] for s in late)
    peak_rss = max(s[4] or s[2] for s in samples)
    early_fds, max_fds = max(s[3] for s in early), max(s[3] for s in working)
    figures = {
        "images": N_IMAGES, "seconds": round(seconds, 1), "images_per_s": round(N_IMAGES / seconds, 1),
        "peak_rss_mib": round(peak_rss / 1024, 1), "rss_at_20pct_mib": round(early_rss / 1024, 1),
        "rss_at_80pct_mib": round(late_rss / 1024, 1), "fds_early": early_fds, "fds_max": max_fds,
        "samples": len(samples), "dataset_mib": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1),
        "meta_json_mib": round((out / "meta.json").stat().st_size / 2**20, 2),
    }
    print("load figures:", json.dumps(figures))
    if os.environ.get("MIDG_LOAD_REPORT"):
        Path(os.environ["MIDG_LOAD_REPORT"]).write_text(json.dumps(figures, indent=1) + "\n")
    assert peak_rss < 2 * 2**20, f"peak RSS {peak_rss / 1024:.0f} MiB"
    assert late_rss - early_rss < 150 * 1024, f"RSS grew {(late_rss - early_rss) / 1024:.0f} MiB during the run"
    assert max_fds <= early_fds + 8, f"descriptors grew from {early_fds} to {max_fds}"
