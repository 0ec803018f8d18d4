"""Disk full and read-only outputs: a clear one-line error, and the previous state intact.

    .venv/bin/python -m pytest tests/test_reliability_diskfull.py -x -q

A full disk is simulated in-process: file writes into the writer's temporary folder raise
OSError(ENOSPC) at a chosen file (an image, a label, meta.json at commit), or the final
rename fails. Running as root ignores file permissions, so the chmod 0o555 case skips
there; the patched writers (ENOSPC, EROFS on the lock file) cover root too.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from _reliability import child_env, files, leftovers_beside, make_boards, smoke_generator_config, quiet
from midg.datasets.errors import DatasetError, MidgError
from midg.datasets.layout import DatasetWriter, load_dataset
from midg.pipelines.cli import app


def disk_full_at(monkeypatch, fail: callable) -> list[str]:
    """Path.write_bytes/write_text and shutil.copyfile raise ENOSPC for paths where
    fail(path) holds (in a temporary folder: the final paths are only ever renamed to)."""
    hits: list[str] = []
    real_bytes, real_text, real_copy = Path.write_bytes, Path.write_text, shutil.copyfile

    def check(path) -> None:
        p = str(path)
        if ".tmp-" in p and fail(p):
            hits.append(p)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), p)

    def write_bytes(self, data):
        check(self)
        return real_bytes(self, data)

    def write_text(self, data, *args, **kwargs):
        check(self)
        return real_text(self, data, *args, **kwargs)

    def copyfile(src, dst, *args, **kwargs):
        check(dst)
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    return hits


def demo(out: Path, seed: int):
    return CliRunner().invoke(app, ["data", "demo", str(out), "--n-images", "8", "--seed", str(seed), "--size", "64"])


@pytest.mark.parametrize("fail_on", ["board_00000.png", "board_00005.png", "labels/val", "meta.json"])
def test_disk_full_while_writing_a_dataset_keeps_the_previous_one(tmp_path, monkeypatch, fail_on):
    out = tmp_path / "demo"
    assert demo(out, seed=0).exit_code == 0
    before = files(out)
    hits = disk_full_at(monkeypatch, lambda p: fail_on in p)
    res = demo(out, seed=1)
    assert hits, f"the patched writer was never reached for {fail_on}"
    assert isinstance(res.exception, MidgError), res.output
    msg = str(res.exception)
    assert "No space left on device" in msg and str(out) in msg and "previous state" in msg
    assert files(out) == before, "the failed write changed the previous dataset"
    assert leftovers_beside(out) == [], "a temporary folder or the lock was left behind"


def test_a_failed_final_rename_puts_the_previous_dataset_back(tmp_path, monkeypatch):
    from midg.datasets import atomic

    out = tmp_path / "demo"
    assert demo(out, seed=0).exit_code == 0
    before = files(out)
    real_replace = os.replace

    def replace(src, dst):
        if ".tmp-" in str(src) and Path(dst) == out:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    res = demo(out, seed=1)
    assert isinstance(res.exception, DatasetError) and "could not move the new output into place" in str(res.exception)
    assert files(out) == before and leftovers_beside(out) == []


def test_a_swap_cut_between_its_two_renames_is_repaired_by_the_next_writer(tmp_path):
    """A kill after `out` moved aside and before the new folder moved in leaves no `out` and
    its previous version in `.out.old-*/x`; the next writer of `out` puts it back first."""
    out = tmp_path / "demo"
    assert demo(out, seed=0).exit_code == 0
    before = files(out)
    old = tmp_path / ".demo.old-abc123"
    old.mkdir()
    os.replace(out, old / "x")
    (tmp_path / ".demo.tmp-dead01" / "images").mkdir(parents=True)  # the killed writer's half-made folder
    with pytest.raises(RuntimeError):
        with DatasetWriter(out, ["open"], source="test"):
            raise RuntimeError("this writer fails too")
    assert files(out) == before and leftovers_beside(out) == []


def test_the_installed_cli_says_disk_full_in_one_line(tmp_path):
    code = (
        "import errno, os, sys\n"
        "from pathlib import Path\n"
        "real = Path.write_bytes\n"
        "def full(self, data):\n"
        "    if '.tmp-' in str(self): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))\n"
        "    return real(self, data)\n"
        "Path.write_bytes = full\n"
        "from midg.pipelines.cli import main\n"
        "sys.argv = ['midg', 'data', 'demo', sys.argv[1], '--n-images', '4', '--size', '64']\n"
        "main()\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], capture_output=True, text=True,
                         timeout=120, env=child_env())
    assert res.returncode == 2, res.stderr
    assert "No space left on device" in res.stderr and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_generate_keeps_the_previous_synthetic_set(tmp_path, monkeypatch):
    from helpers_generate import make_normals, make_paired_dataset
    from midg.augment.library import write_library_folder

    real = load_dataset(make_paired_dataset(tmp_path / "real", n_images=6))
    write_library_folder(real, tmp_path / "lib", crop_size=32, min_window=16)
    make_normals(tmp_path / "normals", n=4)
    out = tmp_path / "synth"
    args = ["generate", "--checkpoint", str(tmp_path / "lib"), "--method", "copypaste", "--normals",
            str(tmp_path / "normals"), "--out", str(out), "--n-images", "12"]
    assert CliRunner().invoke(app, args + ["--seed", "0"]).exit_code == 0
    before = files(out)
    hits = disk_full_at(monkeypatch, lambda p: p.endswith("copypaste_000007.png"))
    res = CliRunner().invoke(app, args + ["--seed", "1"])
    assert hits and isinstance(res.exception, MidgError) and "No space left on device" in str(res.exception)
    assert files(out) == before and leftovers_beside(out) == []


def test_disk_full_at_a_resume_point_keeps_the_last_one_and_resume_finishes(tmp_path, monkeypatch):
    from midg.augment.checkpoint import load_train_state
    from midg.augment.train import train_generator

    boards = make_boards(tmp_path / "boards")
    threads = torch.get_num_threads()
    try:
        ref = tmp_path / "ref"
        train_generator(boards, ref, smoke_generator_config(steps=20), profile="smoke", console=quiet())
        out = tmp_path / "ckpt"
        saves = []

        def second_save(p: str) -> bool:  # train_state is swapped in as a folder: fail the final save (step 20)
            if ".train_state.tmp-" in p and p.endswith("last.safetensors"):
                saves.append(p)
                return len(saves) == 2
            return False

        hits = disk_full_at(monkeypatch, second_save)
        with pytest.raises(DatasetError, match="No space left on device.*rerun with --resume") as exc:
            train_generator(boards, out, smoke_generator_config(steps=20), profile="smoke", console=quiet())
        assert hits and str(out) in str(exc.value)
        monkeypatch.undo()  # space freed
        _, meta = load_train_state(out)
        assert meta["step"] == 10  # the resume point before the failed one, whole
        assert not [p.name for p in out.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
        assert leftovers_beside(out) == []
        train_generator(boards, out, smoke_generator_config(steps=20), profile="smoke", resume=True, console=quiet())
        assert (out / "generator.safetensors").read_bytes() == (ref / "generator.safetensors").read_bytes()
    finally:
        torch.set_num_threads(threads)


def test_a_lock_file_that_cannot_be_created_is_a_clear_error(tmp_path, monkeypatch):
    from midg.datasets import locking

    def read_only(path, flags, mode=0o777):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(locking.os, "open", read_only)
    with pytest.raises(DatasetError, match="cannot create the lock file .Read-only file system.*not writable"):
        with DatasetWriter(tmp_path / "out", ["open"], source="test") as w:
            w.add_image("train", "a", array=np.zeros((8, 8), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: file permissions are not enforced, so a read-only "
                                              "folder cannot be simulated with chmod (the patched-writer tests cover it)")
def test_read_only_parent_folder(tmp_path):
    parent = tmp_path / "ro"
    out = parent / "demo"
    assert demo(out, seed=0).exit_code == 0
    before = files(out)
    parent.chmod(0o555)
    try:
        res = demo(out, seed=1)
        assert isinstance(res.exception, DatasetError) and "Permission denied" in str(res.exception)
        assert files(out) == before
    finally:
        parent.chmod(0o755)
    assert leftovers_beside(out) == []


def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    """mkstemp makes 0600 files: checkpoints and run files written aside must still be
    readable by the group and others, as the umask says (a shared machine, a DVC cache)."""
    from midg.datasets.atomic import atomic_write_json

    umask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "meta.json", {"a": 1})
    finally:
        os.umask(umask)
    assert (tmp_path / "meta.json").stat().st_mode & 0o777 == 0o644
