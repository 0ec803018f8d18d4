"""Generation's entry points ask OpenMP's idle threads to sleep (augment/openmp.py): only
before torch loads, never over a user's choice, and without changing a painted value.

    .venv/bin/python -m pytest tests/test_openmp.py -x -q
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

# a fresh process: what the policy is once torch has loaded, and the SHA-256 of a forward
# pass of the generator's painting network (2 threads, fixed weights and inputs)
PROBE = """
import hashlib, os
from midg.augment.openmp import sleep_idle_openmp_threads
asked = sleep_idle_openmp_threads()
import torch
late = sleep_idle_openmp_threads()
torch.manual_seed(0)
torch.set_num_threads(2)
from midg.augment.blocks.defect import DefectNet
net = DefectNet(channels=1, num_classes=6, base=8, res_blocks=2).eval()
g = torch.Generator().manual_seed(1)
crops, edges = torch.rand((16, 1, 64, 64), generator=g), (torch.rand((16, 1, 64, 64), generator=g) > 0.8).float()
holes = torch.zeros((16, 1, 64, 64)); holes[:, :, 16:48, 20:44] = 1
with torch.inference_mode():
    out = net(inpainted=crops, edges=edges * holes, hole=holes, class_ids=torch.arange(16) % 6)
print(asked, late, os.environ.get("OMP_WAIT_POLICY"), hashlib.sha256(out.numpy().tobytes()).hexdigest())
"""


@functools.lru_cache(maxsize=None)
def _probe(policy: str | None) -> tuple[str, ...]:
    """PROBE's printout in a fresh process under `policy`; each policy's process runs once per
    session (the ACTIVE one is both a case and every case's reference)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return tuple(run.stdout.split())


@pytest.mark.parametrize("user_policy", [None, "ACTIVE"])
def test_idle_threads_sleep_unless_the_user_chose_and_the_painting_is_the_same(user_policy):
    asked, late, policy, painted = _probe(user_policy)
    assert asked == "True" and late == "False"  # once torch (libgomp) has loaded, it is too late
    assert policy == (user_policy or "PASSIVE")
    painted_default = _probe("ACTIVE")[-1]  # libgomp's default: spin, then sleep
    assert painted == painted_default  # the wait policy changes no bit of the painted crops
