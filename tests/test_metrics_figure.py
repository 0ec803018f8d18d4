"""evaluate-generator's figure: a metric left out for the data says why in its panel."""

from midg.augment.metrics import figure
from midg.augment.metrics.evaluate import NO_TEMPLATES, ONE_CLASS


def test_omitted_metrics_get_their_reason_and_computed_ones_their_bars(monkeypatch):
    said = {}
    real_note = figure._not_computed
    monkeypatch.setattr(figure, "_not_computed", lambda ax, title, reason: (said.__setitem__(title, reason),
                                                                           real_note(ax, title, reason)))
    metrics = {  # an unpaired, one-class source (BSData): no CAS, no templates, no inpainting pairs
        "seed": 0,
        "reference": {"c2st": {"accuracy": 0.55, "ci95": [0.5, 0.6]}, "fd": 5.0, "seam": {"log_dev": 0.1}},
        "methods": {"midg": {"c2st": {"accuracy": 0.8, "ci95": [0.75, 0.85]}, "fd": 30.0, "kid": 2.0,
                             "seam": {"log_dev": 0.2}}},
        "omitted": {"cas": ONE_CLASS, "c2st_on_templates": NO_TEMPLATES, "c2st_surface_gap": NO_TEMPLATES},
        "inpainting": {"methods": {}},
    }
    png = figure.plot_metrics(metrics)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert said["CAS (balanced accuracy)"] == ONE_CLASS
    assert said["C2ST vs real defects on templates"] == NO_TEMPLATES
    assert said["Inpainting SSIM vs template"] == figure.NO_INPAINTING
    assert said["Box fidelity (mean IoU)"] == "no set has this metric"
    assert not any(t.startswith(("C2ST accuracy", "Frechet", "KID", "Seam")) for t in said)  # computed: bars
