"""Classification Accuracy Score (CAS): train on one set's crops, test on real test crops.

A generator whose defects carry their class's look gives a classifier that recognises
real defects. Beside every synthetic set the same CNN is trained on the real train crops:
that reference is the number to approach (the real data are what synthetic data stand in
for); a synthetic CAS far below it means the classes are not rendered faithfully.

    result, model = classification_accuracy_score(train_crops, real_test_crops, names, cfg, seed=0)
    result["accuracy"], result["balanced_accuracy"], result["per_class"]["short"]["accuracy"]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .classifier import ClassifierConfig, TinyCNN, predict, train_classifier
from .crops import CropSet


def accuracy_report(pred: np.ndarray, y: np.ndarray, names: Sequence[str], n_train: Sequence[int] | None = None) -> dict[str, Any]:
    """Overall accuracy, balanced accuracy (mean recall over classes present) and per class."""
    per_class: dict[str, Any] = {}
    recalls = []
    for c, name in enumerate(names):
        sel = y == c
        acc = float((pred[sel] == c).mean()) if sel.any() else None
        if acc is not None:
            recalls.append(acc)
        per_class[name] = {"accuracy": acc, "n_test": int(sel.sum())}
        if n_train is not None:
            per_class[name]["n_train"] = int(n_train[c])
    return {
        "accuracy": float((pred == y).mean()) if len(y) else None,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "n_test": int(len(y)),
        "per_class": per_class,
    }


def classification_accuracy_score(train: CropSet, test: CropSet, names: Sequence[str],
                                  cfg: ClassifierConfig = ClassifierConfig(), *, seed: int = 0, device: str = "cpu",
                                  desc: str = "CAS", show_progress: bool = True) -> tuple[dict[str, Any], TinyCNN]:
    """Train on `train`, score on `test`; returns the report and the trained model."""
    if len(test) == 0:
        raise ValueError("CAS needs real test crops")
    model = train_classifier(train.x, train.y, len(names), cfg, seed=seed, device=device, desc=desc, show_progress=show_progress)
    pred = predict(model, test.x).argmax(axis=1)
    report = accuracy_report(pred, test.y, names, n_train=train.per_class(len(names)))
    report["n_train"] = len(train)
    return report, model
