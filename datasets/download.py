"""Fetch DeepPCB from GitHub (pinned commit) and import it: for users with network access.

    midg data download deeppcb data/deeppcb --seed 0

Downloads the zip archive of github.com/tangsanli5201/DeepPCB at DEEPPCB_COMMIT
(about 130 MB) into a temporary folder beside OUT, extracts only `PCBData/`, refusing
any member that would land outside the extraction folder, and runs the importer. The
temporary folder is removed whatever happens. Nothing else in MIDG uses the network.
GitHub builds archive zips on demand, so their bytes (and a checksum) are not stable;
the commit pins the content, and the importer checks every file it reads.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from .deeppcb import DEEPPCB_COMMIT, import_deeppcb
from .errors import DatasetError
from .layout import Dataset
from .progress import console

DEEPPCB_REPO = "tangsanli5201/DeepPCB"
_CHUNK = 1 << 20


def deeppcb_zip_url(commit: str = DEEPPCB_COMMIT) -> str:
    return f"https://github.com/{DEEPPCB_REPO}/archive/{commit}.zip"


def fetch(url: str, dest: Path, opener: Callable = urllib.request.urlopen, timeout: float = 60.0) -> None:
    """Stream `url` into `dest` with a progress bar."""
    try:
        with opener(url, timeout=timeout) as resp, open(dest, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with Progress(TextColumn("downloading DeepPCB"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task("download", total=total)
                while chunk := resp.read(_CHUNK):
                    fh.write(chunk)
                    bar.advance(task, len(chunk))
    except OSError as exc:  # URLError, HTTPError, timeouts are all OSErrors
        raise DatasetError(url, f"download failed ({exc})") from None


def extract_pcbdata(archive: Path, dest: Path) -> Path:
    """Extract the `*/PCBData/...` members of the archive under `dest`; return PCBData."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DatasetError(archive, "downloaded file is not a zip archive") from None
    root = None
    with zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if len(parts) < 2 or parts[1] != "PCBData" or info.is_dir():
                continue
            if PurePosixPath(info.filename).is_absolute() or ".." in parts or "\\" in info.filename:
                raise DatasetError(archive, f"archive member {info.filename!r} would land outside the folder")
            target = dest.joinpath(*parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            root = dest / "PCBData"
    if root is None:
        raise DatasetError(archive, "no PCBData/ folder in the archive")
    return root


def download_deeppcb(out: str | Path, seed: int = 0, commit: str = DEEPPCB_COMMIT,
                     opener: Callable = urllib.request.urlopen) -> Dataset:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.download-", dir=out.parent))
    try:
        archive = work / "deeppcb.zip"
        url = deeppcb_zip_url(commit)
        fetch(url, archive, opener=opener)
        pcb = extract_pcbdata(archive, work / "src")
        return import_deeppcb(pcb, out, seed=seed, origin=url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
