"""benchmarks/generation_speed.py: both methods timed on the same normals with the profile's
own generate section, every run kept, MIDG's placement as the profile resolves it.

    .venv/bin/python -m pytest tests/test_generation_speed.py -x -q
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import generation_speed  # noqa: E402


def test_speed_json_times_both_methods_with_the_profiles_generate_section(tmp_path):
    out = tmp_path / "speed.json"
    report = generation_speed.main(["--profile", "smoke", "--size", "64", "--n-images", "3", "--repeats", "2",
                                    "--threads", "1", "--work", str(tmp_path / "work"), "--out", str(out),
                                    "--note", "a test"])
    assert json.loads(out.read_text(encoding="utf-8")) == report
    assert report["generate"]["batch_size"] == 16 and report["generate"]["edges"] == "generated"  # smoke's section
    for method in ("midg", "copypaste"):
        r = report["results"][method]
        assert r["images"] == 3 and r["defects"] >= 3 and len(r["runs_seconds"]) == len(r["runs_cpu_seconds"]) == 2
        assert sorted(r["runs_seconds"])[0] <= r["seconds"] <= sorted(r["runs_seconds"])[-1]  # the median of the runs
        # images/s comes from the unrounded seconds: at a few milliseconds a run, the JSON's
        # 3 decimals of seconds move 3 / seconds by several per cent
        lo, hi = 3 / (r["seconds"] + 5e-4), 3 / max(r["seconds"] - 5e-4, 1e-9)
        assert lo - 0.005 <= r["images_per_s"] <= hi + 0.005
    # the procedural boards have templates, so the library is paired: auto matches MIDG's places, and leaves
    # copy-paste (the baseline) to the sampler
    assert report["results"]["midg"]["placement"] == "matched"
    assert report["results"]["copypaste"]["placement"] == "conductor"
    assert report["results"]["midg"]["canvas"] == report["results"]["copypaste"]["canvas"] == "normals"
    assert report["midg_vs_copypaste_time"] == round(report["results"]["midg"]["seconds"]
                                                     / report["results"]["copypaste"]["seconds"], 2)
    assert report["note"] == "a test" and report["command"] and report["git_revision"] is not False
