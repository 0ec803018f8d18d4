"""The box type every stage shares: pixel coordinates, x2/y2 exclusive like numpy slices."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    cls: int  # YOLO class index, 0..K-1 (COCO category_id is cls + 1)
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def xywh(self) -> list[float]:
        return [self.x1, self.y1, self.width, self.height]

    def xyxy(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0
