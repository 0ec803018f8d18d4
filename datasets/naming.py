"""Unique file names inside one folder of a canonical dataset.

Labels are named by the image stem (`a.jpg` -> `a.txt`), so two images of one split may
not share a stem even with different suffixes. Importers and merges flatten nested
folders and several sources into one folder; they ask `UniqueNames.claim` for a name.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_part(text: str) -> str:
    """A folder path or source tag as a file-name prefix: `a/b c` -> `a_b_c`."""
    return _UNSAFE.sub("_", text.replace("/", "_")).strip("._") or "x"


class UniqueNames:
    """Hands out file names whose stems are unique (case-insensitively, so a copy on a
    case-insensitive file system cannot collide either)."""

    def __init__(self) -> None:
        self._stems: set[str] = set()

    def claim(self, name: str, prefix: str) -> str:
        """`name` itself when its stem is free, else `{prefix}_{name}`, then `{prefix}_{k}_{name}`."""
        candidates = [name, f"{safe_part(prefix)}_{name}"]
        k = 2
        while True:
            for cand in candidates:
                stem = PurePosixPath(cand).stem.lower()
                if stem not in self._stems:
                    self._stems.add(stem)
                    return cand
            candidates = [f"{safe_part(prefix)}_{k}_{name}"]
            k += 1
