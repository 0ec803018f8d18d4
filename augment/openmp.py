"""OpenMP threads that have nothing to do sleep instead of spinning, for generation's small networks.

libgomp (torch's OpenMP on Linux) lets a thread that finished its share of an operation spin
for a while before it sleeps, so the next operation starts without a wake-up. Generation
runs a small network (base 8 channels, batches of 16 crops of 64 px) whose operations take
well under a millisecond each, with NumPy and OpenCV work in between: with 2 threads on the
2 shared cores of this project's machine the spinning thread took the core the working one
needed, and a forward pass cost 300-970 ms of CPU time against 73 ms with
OMP_WAIT_POLICY=PASSIVE (and 58-92 ms on 1 thread; 2026-12-07, load average 6-7). The wait
policy changes no value: a 64-image DeepPCB dataset came out byte for byte the same.

libgomp reads OMP_WAIT_POLICY once, when it loads with torch: the generation entry points
(`midg generate`, the generate stage, benchmarks/generation_speed.py) call this before they
first import torch. A value the user set is kept.
"""

from __future__ import annotations

import os
import sys


def sleep_idle_openmp_threads() -> bool:
    """Ask for OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; False when it is too
    late for this process (torch, hence libgomp, is loaded already)."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True
