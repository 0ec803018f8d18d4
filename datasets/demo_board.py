"""The geometry of the demo boards: copper shapes, board layouts, defect shapes.

    board = build_board(rng, size=256, zoom=1.0)             # a display list of copper shapes
    copper, holes = board.render(SUPERSAMPLE)                # uint8 masks at 4x the size
    found = place_defects(rng, board, copper, Maps.of(cov), classes)

Everything is in output pixels; design sizes are pixels of a 256 px board, scaled by
`board.unit` (= size / 256 * zoom). midg.datasets.demo turns these masks into images (texture, blur, noise).
Pure numpy/OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

SUPERSAMPLE = 4  # shapes are drawn at 4x and area-averaged: smooth, sub-pixel edges
_SHIFT = 4  # fixed-point bits for cv2's sub-pixel drawing
BLUR_KSIZE = 5  # the optics blur; a changed coverage pixel changes at most ksize // 2 px around it
BLUR_RADIUS = BLUR_KSIZE // 2
DEFECT_GAP = 2  # px of identical image kept between any two defects' regions
MIN_CHANGED = 2.0  # a defect must change at least this many output pixels' worth of copper

OPEN, SHORT, MOUSEBITE, SPUR, COPPER, PIN_HOLE = range(6)  # indices into DEFECT_CLASSES

_DIRS = np.array([(math.cos(a * math.pi / 4), math.sin(a * math.pi / 4)) for a in range(8)])


# ---------------------------------------------------------------- shapes and drawing


@dataclass(frozen=True)
class _Shape:
    kind: str  # "line" (open polyline, round joins), "circle", "poly" (filled polygon)
    pts: np.ndarray  # Nx2 (x, y) in output pixels; a circle's centre is 1x2
    size: float = 0.0  # line width or circle radius, output pixels

    def bounds(self) -> tuple[float, float, float, float]:
        pad = self.size / 2 if self.kind == "line" else self.size
        return (self.pts[:, 0].min() - pad, self.pts[:, 1].min() - pad,
                self.pts[:, 0].max() + pad, self.pts[:, 1].max() + pad)


def _fixed(pts: np.ndarray, scale: float) -> np.ndarray:
    # Pixel i covers [i, i+1) in output units; cv2 puts integer coordinates on pixel centres.
    return np.round((np.asarray(pts, np.float64) * scale - 0.5) * (1 << _SHIFT)).astype(np.int32)


def _draw(canvas: np.ndarray, shape: _Shape, value: int, scale: float, inflate: float = 0.0) -> None:
    """Draw one shape; `inflate` grows it by that many output pixels (clearances)."""
    p = _fixed(shape.pts, scale)
    if shape.kind == "line":
        thick = max(1, int(round((shape.size + 2 * inflate) * scale)))
        cv2.polylines(canvas, [p], False, value, thick, cv2.LINE_8, _SHIFT)
    elif shape.kind == "circle":
        r = int(round((shape.size + inflate) * scale * (1 << _SHIFT)))
        cv2.circle(canvas, (int(p[0, 0]), int(p[0, 1])), r, value, -1, cv2.LINE_8, _SHIFT)
    elif shape.kind == "poly":
        cv2.fillPoly(canvas, [p], value, cv2.LINE_8, _SHIFT)
        if inflate > 0:
            cv2.polylines(canvas, [p], True, value, max(1, int(round(2 * inflate * scale))), cv2.LINE_8, _SHIFT)
    else:  # pragma: no cover - programming error
        raise ValueError(shape.kind)


def _line(pts, width: float) -> _Shape:
    return _Shape("line", np.asarray(pts, np.float64), float(width))


def _circle(centre, r: float) -> _Shape:
    return _Shape("circle", np.asarray(centre, np.float64).reshape(1, 2), float(r))


def _poly(pts) -> _Shape:
    return _Shape("poly", np.asarray(pts, np.float64))


def _rect(cx: float, cy: float, w: float, h: float) -> _Shape:
    return _poly([(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)])


# ---------------------------------------------------------------- the board


@dataclass
class Board:
    size: int
    unit: float  # output pixels per design unit (design units are pixels of a 256 px board)
    pours: list[_Shape]  # copper regions, drawn first; other copper clears around them
    copper: list[_Shape]  # traces and pads
    keepouts: list[_Shape]  # pours stay out of these (a bus of traces gets no copper between them)
    holes: list[_Shape]  # drill holes of vias and pads (neither copper nor substrate)
    segments: list[tuple[np.ndarray, np.ndarray, float]]  # trace centre lines (p0, p1, width)
    clearance: float  # copper-to-copper spacing of the design, output pixels

    def render(self, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """(copper, holes) uint8 masks (255 = in) at `scale` times the output size."""
        n = self.size * scale
        copper = np.zeros((n, n), np.uint8)
        for s in self.pours:
            _draw(copper, s, 255, scale)
        for s in self.keepouts:
            _draw(copper, s, 0, scale)
        for s in self.copper:  # a pour keeps its clearance from everything else
            _draw(copper, s, 0, scale, inflate=self.clearance)
        for s in self.copper:
            _draw(copper, s, 255, scale)
        holes = np.zeros((n, n), np.uint8)
        for s in self.holes:
            _draw(copper, s, 0, scale)
            _draw(holes, s, 255, scale)
        return copper, holes


def _offset_polyline(pts: np.ndarray, offset: float) -> np.ndarray:
    """The polyline shifted sideways by `offset` (mitred corners: parallel bundle traces)."""
    d = np.diff(pts, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1)
    out = [pts[0] + offset * nrm[0]]
    for i in range(1, len(pts) - 1):
        m = nrm[i - 1] + nrm[i]
        out.append(pts[i] + offset * m / (1.0 + float(nrm[i - 1] @ nrm[i])))
    out.append(pts[-1] + offset * nrm[-1])
    return np.array(out)


def _route(rng: np.random.Generator, size: int, u: float, off_board_start: bool) -> tuple[np.ndarray, int]:
    """A centre line: long axis-parallel runs joined by short 45-degree jogs."""
    d = int(rng.choice(8, p=[0.2, 0.05, 0.2, 0.05, 0.2, 0.05, 0.2, 0.05]))
    start = rng.uniform(0.1, 0.9, 2) * size
    pts = [start - _DIRS[d] * size * 1.5 if off_board_start else start, start]
    for _ in range(int(rng.integers(1, 4))):
        straight = d % 2 == 0
        length = rng.uniform(30, 150) * u if straight else rng.uniform(8, 45) * u
        pts.append(pts[-1] + _DIRS[d] * length)
        d = (d + int(rng.choice([-1, 1]))) % 8
    return np.array(pts[1:] if not off_board_start else pts), d


def _trace_end(rng, end: np.ndarray, direction: np.ndarray, w: float, room: float, row: int,
               clearance: float) -> tuple[list[_Shape], list[_Shape], np.ndarray]:
    """A pad at the end of a trace (round or square, maybe drilled); returns its centre too."""
    r = min(w * rng.uniform(0.85, 1.4), room)
    if r < w / 2 + 0.8:
        r = w / 2 + 0.8
    centre = end + direction * row * (2 * r + clearance)
    pad = _circle(centre, r) if rng.random() < 0.7 else _rect(centre[0], centre[1], 2 * r, 2 * r)
    holes = [_circle(centre, r * rng.uniform(0.35, 0.5))] if rng.random() < 0.45 and r > 2.5 else []
    return [pad], holes, centre


def _bundle(rng: np.random.Generator, size: int, u: float, clearance: float):
    """1-6 parallel traces of one width, as flexible circuits route them."""
    k = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.22, 0.22, 0.2, 0.16, 0.12, 0.08]))
    w = rng.uniform(2.2, 6.5) * u
    if k == 1 and rng.random() < 0.35:  # a wide supply trace
        w = rng.uniform(6.5, 12.0) * u
    gap = max(clearance, rng.uniform(0.7, 2.0) * w)
    pitch = w + gap
    ends_on_board, starts_on_board = rng.random() < 0.45, rng.random() < 0.3
    centre, _ = _route(rng, size, u, off_board_start=not starts_on_board)
    if not ends_on_board:  # run off the board
        last = centre[-1] - centre[-2]
        centre = np.vstack([centre, centre[-1] + last / np.linalg.norm(last) * size * 1.5])
    copper, holes, segments = [], [], []
    stagger = pitch < 2 * (w * 0.85) + clearance  # pads too big to sit side by side
    for j in range(k):
        pts = _offset_polyline(centre, (j - (k - 1) / 2) * pitch)
        room = (2 * pitch - clearance) / 2 if stagger else (pitch - clearance) / 2
        for on_board, last in ((ends_on_board, True), (starts_on_board, False)):
            if not on_board:
                continue
            end, prev = (pts[-1], pts[-2]) if last else (pts[0], pts[1])
            pads, hs, c = _trace_end(rng, end, (end - prev) / np.linalg.norm(end - prev), w, room,
                                     j % 2 if stagger else 0, clearance)
            pts = np.vstack([pts[:-1], c]) if last else np.vstack([c, pts[1:]])
            copper += pads
            holes += hs
        copper.append(_line(pts, w))
        segments += [(pts[i], pts[i + 1], w) for i in range(len(pts) - 1)]
    return copper, holes, segments, [_line(centre, (k - 1) * pitch + w + 2 * clearance)]


def _stub(rng, start: np.ndarray, u: float, w: float) -> tuple[_Shape, list]:
    d = int(rng.integers(0, 8))
    pts = [start, start + _DIRS[d] * rng.uniform(8, 40) * u]
    if rng.random() < 0.6:
        d = (d + int(rng.choice([-1, 1]))) % 8
        pts.append(pts[-1] + _DIRS[d] * rng.uniform(10, 90) * u)
    pts = np.array(pts)
    return _line(pts, w), [(pts[i], pts[i + 1], w) for i in range(len(pts) - 1)]


def _via(rng: np.random.Generator, size: int, u: float, clearance: float):
    """A drilled via or round pad, often with a trace leaving it."""
    c = rng.uniform(0.05, 0.95, 2) * size
    r = rng.uniform(3.0, 7.5) * u
    copper, segments = [_circle(c, r)], []
    if rng.random() < 0.7:
        line, segments = _stub(rng, c, u, min(rng.uniform(2.0, 4.5) * u, 1.6 * r))
        copper.insert(0, line)
    return copper, [_circle(c, r * rng.uniform(0.38, 0.55))], segments, []


def _pad_row(rng: np.random.Generator, size: int, u: float, clearance: float):
    """A connector/SMD footprint: a row of rectangular pads, some with traces."""
    m = int(rng.integers(2, 7))
    pw, ph = rng.uniform(4, 9) * u, rng.uniform(7, 16) * u
    pitch = pw + max(clearance, rng.uniform(2.5, 6) * u)
    c0 = rng.uniform(0.05, 0.95, 2) * size
    vertical = rng.random() < 0.5
    copper, segments = [], []
    span = (m - 1) * pitch
    keepout = _rect(c0[0] + (0 if vertical else span / 2), c0[1] + (span / 2 if vertical else 0),
                    (ph if vertical else span + pw) + 2 * clearance, (span + pw if vertical else ph) + 2 * clearance)
    for i in range(m):
        cx, cy = (c0[0], c0[1] + i * pitch) if vertical else (c0[0] + i * pitch, c0[1])
        w_, h_ = (ph, pw) if vertical else (pw, ph)
        copper.append(_rect(cx, cy, w_, h_))
        if rng.random() < 0.6:
            out = np.array([1.0, 0.0]) if vertical else np.array([0.0, 1.0])
            start = np.array([cx, cy]) + out * (ph / 2)
            w = min(rng.uniform(2.0, 4.0) * u, pw * 0.8)
            pts = [np.array([cx, cy]), start + out * rng.uniform(4, 20) * u]
            pts.append(pts[-1] + (out + rng.choice([-1, 1]) * out[::-1]) / math.sqrt(2) * rng.uniform(0, 25) * u)
            pts.append(pts[-1] + out * rng.uniform(5, 60) * u)
            pts = np.array(pts)
            copper.insert(0, _line(pts, w))
            segments += [(pts[j], pts[j + 1], w) for j in range(1, len(pts) - 1)]
    return copper, [], segments, [keepout]


def _pour(rng: np.random.Generator, size: int, u: float) -> _Shape:
    """A copper region: a rectangle with 45-degree chamfers, often running off the board."""
    w, h = rng.uniform(40, 140) * u, rng.uniform(35, 120) * u
    x, y = rng.uniform(-0.2, 0.9) * size, rng.uniform(-0.2, 0.9) * size
    c = [rng.uniform(0, 0.35) * min(w, h) for _ in range(4)]
    return _poly([(x + c[0], y), (x + w - c[1], y), (x + w, y + c[1]), (x + w, y + h - c[2]),
                  (x + w - c[2], y + h), (x + c[3], y + h), (x, y + h - c[3]), (x, y + c[0])])


def build_board(rng: np.random.Generator, size: int, zoom: float = 1.0) -> Board:
    """A random board layout; `zoom` > 1 magnifies the design (traces, pads and defects alike),
    so a board shows a smaller piece of circuit with bigger defects (zoom 2: median defect ~20 px
    at 256 px instead of ~10, which detectors trained for a minute on a CPU can learn)."""
    if not 0.25 <= zoom <= 8:
        raise ValueError(f"zoom must be 0.25..8, got {zoom}")
    u = max(size / 256.0 * zoom, 0.6)  # tiny boards keep features drawable rather than shrinking them away
    clearance = rng.uniform(2.2, 3.5) * u
    n_pours = int(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25]))
    board = Board(size, u, [_pour(rng, size, u) for _ in range(n_pours)], [], [], [], [], clearance)
    occupied = np.zeros((size, size), np.uint8)  # accepted traces and pads, at output scale
    want = {"bundle": int(rng.integers(4, 10)), "via": int(rng.integers(2, 11)), "pads": int(rng.integers(0, 4))}
    makers = {"bundle": _bundle, "via": _via, "pads": _pad_row}
    for kind in ("pads", "bundle", "via"):
        placed = 0
        for _ in range(want[kind] * 8):
            if placed == want[kind]:
                break
            copper, holes, segments, keepouts = makers[kind](rng, size, u, clearance)
            footprint = np.zeros_like(occupied)
            for s in copper:
                _draw(footprint, s, 255, 1, inflate=clearance + 0.5)
            if not footprint.any() or (footprint & occupied).any():
                continue
            for s in copper:
                _draw(occupied, s, 255, 1)
            board.copper += copper
            board.holes += holes
            board.keepouts += keepouts
            board.segments += segments
            placed += 1
    return board


# ---------------------------------------------------------------- defects


@dataclass
class Maps:
    """Template copper at output scale, for finding places where a defect class fits."""

    cov: np.ndarray  # float32 copper coverage 0..1
    copper: np.ndarray  # bool, coverage > 0.5
    dist_in: np.ndarray  # inside copper: distance to the nearest non-copper pixel
    dist_out: np.ndarray  # outside copper: distance to the nearest copper pixel
    labels: np.ndarray  # connected copper pieces (a short joins two different ones)

    @classmethod
    def of(cls, cov: np.ndarray) -> "Maps":
        copper = cov > 0.5
        cu8 = copper.astype(np.uint8)
        return cls(cov, copper, cv2.distanceTransform(cu8, cv2.DIST_L2, 5),
                   cv2.distanceTransform(1 - cu8, cv2.DIST_L2, 5), cv2.connectedComponents(cu8, connectivity=8)[1])

    def at(self, p: np.ndarray) -> float:
        x, y = int(math.floor(p[0])), int(math.floor(p[1]))
        n = self.cov.shape[0]
        return float(self.cov[y, x]) if 0 <= x < n and 0 <= y < n else 0.0

    def label(self, p: np.ndarray) -> int:
        x, y = int(math.floor(p[0])), int(math.floor(p[1]))
        n = self.cov.shape[0]
        return int(self.labels[y, x]) if 0 <= x < n and 0 <= y < n else 0


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _blob(rng, centre: np.ndarray, r: float, roughness: float) -> _Shape:
    """An irregular closed outline: residual copper, or a hole in it."""
    nv = int(rng.integers(7, 12))
    ang = np.sort(rng.uniform(0, 2 * math.pi, nv))
    rad = r * rng.uniform(1 - roughness, 1.0, nv)
    pts = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1)
    pts[:, 0] *= rng.uniform(0.6, 1.6)  # elongated, then turned
    a = rng.uniform(0, math.pi)
    pts = pts @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    return _poly(pts + centre)


def _trace_site(rng, board: Board, maps: Maps, min_w: float):
    """A point on a free stretch of trace: copper on the centre line, substrate on both sides."""
    segs = [s for s in board.segments if s[2] >= min_w]
    if not segs:
        return None
    lengths = np.array([np.linalg.norm(b - a) for a, b, _ in segs])
    p0, p1, w = segs[int(rng.choice(len(segs), p=lengths / lengths.sum()))]
    length = float(np.linalg.norm(p1 - p0))
    margin = w + 4 * board.unit
    if length < 2 * margin:
        return None
    t = rng.uniform(margin, length - margin)
    u = (p1 - p0) / length
    n = np.array([-u[1], u[0]])
    p = p0 + u * t
    edge = 8 * board.unit
    if not (edge <= p[0] < board.size - edge and edge <= p[1] < board.size - edge):
        return None
    if maps.at(p) < 0.99 or any(maps.at(p + s * n * (w / 2 + 1.5)) > 0.01 for s in (-1, 1)):
        return None
    return p, u, n, w


def _first_copper(maps: Maps, start: np.ndarray, v: np.ndarray, max_d: float) -> float | None:
    """Distance along v from `start` to the first copper pixel (None when none within max_d)."""
    for t in np.arange(0.5, max_d, 0.5):
        if maps.at(start + v * t) > 0.5:
            return float(t)
    return None


def _defect_shape(rng, cls: int, board: Board, maps: Maps) -> tuple[_Shape, int] | None:
    """One candidate defect (shape, 255 to add copper or 0 to remove it), or None."""
    u_ = board.unit
    if cls in (OPEN, SHORT, MOUSEBITE, SPUR):
        site = _trace_site(rng, board, maps, min_w=3.0 * u_ if cls == MOUSEBITE else 0.0)
        if site is None:
            return None
        p, u, n, w = site
        side = float(rng.choice([-1.0, 1.0]))
        if cls == OPEN:  # a cut of substrate right across the trace, a little skewed and ragged
            gap, skew, half = rng.uniform(1.5, 6.5) * u_, rng.uniform(-0.5, 0.5), w / 2 + 1.0
            corners = [p + n * s * half + u * (e * gap / 2 + skew * s * half) for s, e in ((-1, -1), (-1, 1), (1, 1), (1, -1))]
            return _poly(np.array(corners) + rng.uniform(-0.3, 0.3, (4, 2)) * u_), 0
        if cls == MOUSEBITE:  # 1-3 round notches bitten out of one edge
            m = int(rng.integers(1, 5))
            r = max(0.9, rng.uniform(0.25, 0.45) * w)
            step = r * rng.uniform(1.0, 1.6)
            bites = [p + side * n * (w / 2 + 0.15 * r) + u * (i - (m - 1) / 2) * step for i in range(m)]
            return [_circle(c, r * rng.uniform(0.8, 1.0)) for c in bites], 0
        if cls == SPUR:  # a tapering tongue of copper off one edge, into free substrate
            base, length = rng.uniform(1.2, 3.6) * u_, rng.uniform(2.0, 10.0) * u_
            v = _rot(side * n, rng.uniform(-0.6, 0.6))
            e = p + side * n * (w / 2 - 0.5)
            hit = _first_copper(maps, p + side * n * (w / 2 + 0.6), v, length + 3.0 * u_ + 2)
            if hit is not None:
                return None
            tip, tw = e + v * (length + 0.5), base * rng.uniform(0.15, 0.7)
            return _poly([e - u * base / 2, e + u * base / 2, tip + u * tw / 2, tip - u * tw / 2]), 255
        # SHORT: a thin, slightly wavy bridge to the nearest other copper across the gap
        v = _rot(side * n, rng.uniform(-0.5, 0.5))
        start = p + side * n * (w / 2)
        d = _first_copper(maps, start, v, 24 * u_)
        if d is None or d < 1.5 or maps.label(start + v * (d + 0.5)) == maps.label(p):
            return None
        end = start + v * (d + 0.9)
        mid = [start + v * d * f + _rot(v, math.pi / 2) * rng.uniform(-1, 1) * u_ for f in (0.35, 0.7)]
        return _line([start - v * 0.6, *mid, end], rng.uniform(0.8, 2.2) * u_), 255
    if cls == COPPER:  # residual copper on bare substrate
        r = rng.uniform(1.5, 8.0) * u_
        ok = maps.dist_out >= r + 3.0
        e = int(8 * u_ + r)
        ok[:e], ok[-e:], ok[:, :e], ok[:, -e:] = False, False, False, False
        idx = np.flatnonzero(ok)
        if not idx.size:
            return None
        y, x = divmod(int(rng.choice(idx)), board.size)
        return _blob(rng, np.array([x + 0.5, y + 0.5]), r, roughness=0.5), 255
    # PIN_HOLE: a small hole of substrate inside copper (pads, pours, wide traces)
    r = rng.uniform(1.0, 4.2) * u_
    ok = maps.dist_in >= r + 2.0
    e = int(8 * u_ + r)
    ok[:e], ok[-e:], ok[:, :e], ok[:, -e:] = False, False, False, False
    idx = np.flatnonzero(ok)
    if not idx.size:
        return None
    y, x = divmod(int(rng.choice(idx)), board.size)
    return _blob(rng, np.array([x + 0.5, y + 0.5]), r, roughness=0.3), 0


def place_defects(rng, board: Board, copper_ss: np.ndarray, maps: Maps, classes: Sequence[int],
                   tries: int = 40) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]] | None:
    """Draw the defects into a copy of the supersampled copper.

    Returns the defect copper and, per defect, (class, region): the box (x1, y1, x2, y2) at
    output scale that holds every pixel the defect can change after blurring. Regions keep
    DEFECT_GAP apart. None when some class found no place on this board.
    """
    S, n = SUPERSAMPLE, board.size
    out = copper_ss.copy()
    placed: list[tuple[int, tuple[int, int, int, int]]] = []
    for cls in classes:
        for _ in range(tries):
            cand = _defect_shape(rng, int(cls), board, maps)
            if cand is None:
                continue
            shapes, value = cand
            shapes = shapes if isinstance(shapes, list) else [shapes]
            b = np.array([s.bounds() for s in shapes])
            x1, y1 = (int(math.floor(v * S)) - 2 for v in b[:, :2].min(0))
            x2, y2 = (int(math.ceil(v * S)) + 2 for v in b[:, 2:].max(0))
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, n * S), min(y2, n * S)
            before = out[y1:y2, x1:x2].copy()
            for s in shapes:
                _draw(out, s, value, S)
            ys, xs = np.nonzero(out[y1:y2, x1:x2] != before)
            if ys.size < MIN_CHANGED * S * S:
                out[y1:y2, x1:x2] = before
                continue
            r = BLUR_RADIUS + 1
            region = ((x1 + int(xs.min())) // S - r, (y1 + int(ys.min())) // S - r,
                      (x1 + int(xs.max())) // S + 1 + r, (y1 + int(ys.max())) // S + 1 + r)
            inside = region[0] >= 0 and region[1] >= 0 and region[2] <= n and region[3] <= n
            clash = any(region[0] < q[2] + DEFECT_GAP and q[0] < region[2] + DEFECT_GAP and
                        region[1] < q[3] + DEFECT_GAP and q[1] < region[3] + DEFECT_GAP for _, q in placed)
            if not inside or clash:
                out[y1:y2, x1:x2] = before
                continue
            placed.append((int(cls), region))
            break
        else:
            return None
    return out, placed

