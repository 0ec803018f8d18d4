"""Step 4 of generation, writing: each image with its labels (an annotated canvas' real
boxes first, then the new ones) into the dataset being built, every defect's record for
meta.json, and the progress bar."""

from __future__ import annotations

from midg.datasets.boxes import Box
from midg.datasets.layout import DatasetWriter

from .generate_config import GenerateConfig
from .planning import Plan


def write_plan(writer: DatasetWriter, plan: Plan, cfg: GenerateConfig, names: list[str], records: list,
           sources: list) -> int:
    boxes, n_dropped = list(plan.real_boxes), 0  # an annotated canvas keeps its real labels, first
    name = f"{cfg.method}_{plan.k:06d}"
    rel = f"images/train/{name}.png"
    sources.append({"image": rel, "source": plan.normal_rel, "canvas": plan.canvas,
                    "real_boxes": [[b.cls, *b.xyxy()] for b in plan.real_boxes]})
    for d in plan.defects:
        if d.box is None:
            n_dropped += 1
        else:
            boxes.append(Box(names.index(d.cls), *d.box))
        records.append({"image": rel, "normal": plan.normal_rel, "canvas": plan.canvas, "rect": list(d.rect),
                        "first_rect": list(d.first_rect),
                        "box": list(d.box) if d.box is not None else None, "class": d.cls, "edges": d.edges,
                        "changed_px": d.n_changed, "attempts": d.attempts, "seed": [cfg.seed, plan.k],
                        # the box the defect went in, its rectangle's ring around it (every real structure or paste)
                        **({"defect_box": list(d.entry_box)} if d.entry_box is not None else {}),
                        **({"entry": d.entry, "entry_box": list(d.entry_box), "transform": d.transform,
                            "mismatch": d.mismatch} if d.entry is not None else {})})
    writer.add_image("train", name, array=plan.result, boxes=boxes)
    return n_dropped


class progress_bar:
    """A rich progress bar over images (or nothing), as a context giving `advance()`."""

    def __init__(self, enabled: bool, total: int, description: str):
        self.enabled, self.total, self.description = enabled, total, description
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
