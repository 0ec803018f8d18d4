"""The BSData generator benchmark's target check: each target flips with its own figure."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bsdata_generator  # noqa: E402


def _summary(**midg):
    base = {"c2st": 0.70, "fd": 50.0, "seam": 1.25}
    base.update(midg)
    return {"midg_annotated": base, "copypaste_annotated": {"c2st": 0.80, "fd": 60.0, "seam": 1.30},
            "copypaste_surface_annotated": {"c2st": 0.65, "fd": 60.0, "seam": 1.30},
            "real_reference": {"c2st": 0.52, "fd": 20.0, "seam": 1.10}}


def test_all_targets_met_when_midg_beats_every_bound():
    assert all(t["met"] for t in bsdata_generator.targets(_summary()).values())


@pytest.mark.parametrize("change, broken", [
    ({"c2st": 0.76}, {"c2st_at_most_0.75"}),
    ({"c2st": 0.80}, {"c2st_at_most_0.75", "c2st_below_copypaste"}),
    ({"seam": 1.33}, {"seam_at_most_copypaste", "seam_within_1.2x_real"}),
    ({"seam": 1.29}, set()),
    ({"seam": 1.321}, {"seam_at_most_copypaste", "seam_within_1.2x_real"}),
    ({"fd": 60.0}, {"fd_below_copypaste"}),
    ({"c2st": None}, {"c2st_at_most_0.75", "c2st_below_copypaste"}),
])
def test_each_target_fails_on_its_own_figure(change, broken):
    got = {k for k, t in bsdata_generator.targets(_summary(**change)).items() if not t["met"]}
    assert got == broken


def test_targets_read_the_named_copypaste_arm():
    vs_default = bsdata_generator.targets(_summary())
    vs_same_place = bsdata_generator.targets(_summary(), "copypaste_surface_annotated")
    assert vs_default["c2st_below_copypaste"]["met"] and not vs_same_place["c2st_below_copypaste"]["met"]



def test_summarise_reads_each_arms_figures_and_edge_contrast(tmp_path):
    def row(path, c2st, edge):
        return {"path": str(path), "c2st": {"accuracy": c2st, "ci95": [0, 1]}, "fd": 40.0, "kid": 1.0,
                "seam": {"mean": 1.0, "median": 1.0}, "crops": {"n": 9}, "edge_contrast": edge}

    arms = {"midg_annotated": tmp_path / "m", "copypaste_annotated": tmp_path / "c"}
    metrics = {"methods": {"m": row(arms["midg_annotated"], 0.7, {"mean_log": 0.66, "edge_gap": 0.24}),
                           "c": row(arms["copypaste_annotated"], 0.6, {"n": 0})},
               "reference": {"c2st": {"accuracy": 0.5}, "fd": 20.0, "seam": {"mean": 1.1},
                             "edge_contrast": {"mean_log": 0.42}}}
    s = bsdata_generator.summarise(metrics, arms)
    assert s["midg_annotated"]["edge_contrast"] == 0.66 and s["midg_annotated"]["edge_gap"] == 0.24
    assert s["copypaste_annotated"]["edge_contrast"] is None and s["real_reference"]["edge_contrast"] == 0.42
    assert s["midg_annotated"]["c2st"] == 0.7 and s["copypaste_annotated"]["defects"] == 9


def test_variant_params_change_only_the_named_generate_keys(tmp_path):
    import yaml

    import bsdata_variant

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "demo", "profiles": {
        "bsdata": {"generator": {"steps": 3}, "generate": {"batch_size": 16, "composite": "defect"}},
        "demo": {"generate": {"batch_size": 8}}}}))
    settings = dict(bsdata_variant.parse_setting(s) for s in ("composite=structure", "edge_feather=2", "classes=null"))
    assert settings == {"composite": "structure", "edge_feather": 2, "classes": None}
    out = bsdata_variant.variant_params(params, "bsdata", settings, tmp_path / "v" / "params_v.yaml")
    doc = yaml.safe_load(out.read_text())
    assert doc["profiles"]["bsdata"]["generate"] == {"batch_size": 16, "composite": "structure", "edge_feather": 2,
                                                     "classes": None}
    assert doc["profiles"]["bsdata"]["generator"] == {"steps": 3} and doc["profiles"]["demo"] == {"generate": {"batch_size": 8}}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bsdata_variant.parse_setting("composite")
