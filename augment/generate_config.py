"""What a generation run is asked for: GenerateConfig (one source of defaults, filled from
params.yaml's `generate` section and the CLI's flags), and which methods paste real defects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from midg.datasets.errors import ConfigError
from midg.datasets.params import section_config

from .boxes import MIN_CHANGED_PX, THRESHOLD

PASTE_METHODS = ("copypaste", "poisson")  # methods that paste real defects from the library (no GAN)


STRUCTURE_FILL = (0.6, 1.0)  # the default share of its hole a library structure spans (GenerateConfig.structure_fill)


@dataclass(frozen=True)
class GenerateConfig:
    n_images: int = 100  # synthetic images to write (all shards together)
    seed: int = 0  # image k uses np.random.default_rng([seed, k])
    method: Literal["midg", "copypaste", "poisson"] = "midg"  # how defect pixels are made (poisson: copy-paste, Poisson-blended)
    classes: list[str] | None = None  # defect classes to draw (None: every class with real examples)
    defects_per_image: tuple[int, int] | None = None  # inclusive range; None: the real images' counts (stats)
    # MIDG edge source: library (real structures), generated (the edge block), shape (--shape PNG);
    # auto: library when the checkpoint has one, else generated (the shipped DeepPCB generator has none)
    edges: Literal["auto", "generated", "library", "shape"] = "auto"
    batch_size: int = 64  # crops per forward pass of the inpainting and painting blocks
    # defect: take only the pixels the painting changed (above change_threshold, near the
    # structure); rectangle: the whole rectangle; structure: the pixels under the structure the
    # defect was painted from (library, shape; its outline resized smoothly to native size),
    # blended in over max(edge_feather, 1) px, however faint the painted change (a generated
    # structure falls back to defect). On photographs the threshold cut a soft painted pit into
    # a hard, stair-stepped fragment of itself
    composite: Literal["defect", "rectangle", "structure"] = "defect"
    # Off a two-level surface, how the painted crop (crop_size) comes back to the window's size.
    # image: the painted crop resized (the surface blurred where the window is larger); change:
    # the window's own pixels plus the painting's change resized (native surface detail kept)
    resample: Literal["image", "change"] = "image"
    background: Literal["normal", "inpainted"] = "normal"  # paint on the real normal crop, or on the inpainted one (erases)
    levels: Literal["auto", "off"] = "auto"  # auto: on a two-level surface painted pixels take only its levels
    redraws: int = 3  # a defect that changed too little is drawn again this many times before it is left out
    change_threshold: int = THRESHOLD  # grey levels: a pixel counts as changed above this
    min_changed_px: int = MIN_CHANGED_PX  # fewer changed pixels: the defect is dropped (counted)
    # learned: the tight box of what changed, grown by the real boxes' median margin (stats box_margin);
    # rect: the rectangle itself, which the sampler drew from the real boxes' sizes and the defect was
    # painted into as real defects sit in their boxes; tight: what changed, nothing more
    box_style: Literal["learned", "rect", "tight"] = "learned"
    # conductor: the sampler places a rectangle where the class' share of conductor is typical (masks.py);
    # matched: where the normal's traces match the surface a real defect of the class sat on, that
    # defect's real box size and orientation kept (placement.py; its structure or pixels go there);
    # auto: matched for MIDG when its checkpoint has a library with paired (template) entries, else
    # conductor; copy-paste stays the common baseline (conductor) unless matched is asked for;
    # surface: where the normal's surface looks like the real defects' surroundings (no template
    # needed: surface_placement.py, the stats' `surface` model); auto picks it for MIDG when the
    # real defects had no templates
    placement: Literal["auto", "conductor", "matched", "surface"] = "auto"
    # MIDG with a given structure (library, shape): a pixel farther than this (px) from it keeps the
    # normal's value, so the change is where the real shape says; None: anywhere in the rectangle.
    # A generated edge map is soft and approximate: there the painting block decides
    structure_margin: int | None = 2
    # MIDG with a library structure (a real outline or edge map, not matched to its own box): its
    # sides as a share of the hole's, drawn uniformly from this range. A real defect fills its tight
    # box: on BSData (0.6, 1.0) painted pits of about 0.6x the real boxes' area (483-528 px2 against
    # 762-885), yet [1, 1] made them easier to tell from real ones (C2ST 0.870 -> 0.943 seed 0,
    # 0.773 -> 0.830 seed 1; FD 29.9 -> 16.8 seed 0: generator_bsdata_s{0,1}_variant_fill_84619f0.json)
    structure_fill: tuple[float, float] = STRUCTURE_FILL
    # Off a two-level surface (photographs), the painted change is blended in over this many px
    # inside its edge, as copy-paste's masks are; 0: a hard mask. Off by default: on BSData (seed 0,
    # 0a1aadf vs 59fdd1c, one generator) 3 px changed nothing measurable (edge contrast mean log
    # 0.68 vs 0.66, real 0.42; FD 52.4 vs 46.9; C2ST 0.764 vs 0.726, intervals overlapping) and
    # nothing visible in the crops. A two-level surface snaps to its levels instead
    edge_feather: int = 0
    # Labelling: 0, every pixel outside the tight box of what changed (above change_threshold)
    # goes back to the canvas', so a fainter halo beyond it is cut along a straight line (a
    # seam on photographs: half of a feathered paste's box border still changed); > 0, what
    # lies outside the label box (the tight box grown by the real margin) goes back and the
    # change fades out over this many px inside it. Every method, off a two-level surface
    box_fade: int = 0
    # Off a two-level surface, the colour of MIDG's painted change. painted: the defect module's
    # own RGB; surface: only its brightness, as a ratio on the canvas pixel (the canvas' hue kept):
    # on BSData the module's RGB left green and magenta fringes along the outlines, which no real
    # pit has; yet surface did not help there (C2ST 0.753 vs 0.723, seed 0: generator_bsdata_s0_colour_5085705.json)
    colour: Literal["painted", "surface"] = "painted"
    # What the new defects are painted into. normals: the defect-free images; annotated: the annotated
    # training images themselves (the test images' own surface), a new rectangle kept `real_box_margin`
    # px from every real box and the real labels carried over; both: a `canvas_share` of annotated
    # images, the rest normals; auto: annotated when --normals is a dataset with annotated training
    # images, else normals. DeepPCB, N = 100: 300 bare templates cost a detector as much as 300
    # templates with synthetic defects, copy-paste into the annotated images did not (issue 20)
    canvas: Literal["auto", "normals", "annotated", "both"] = "auto"
    canvas_share: float = 0.5  # canvas both: the share of output images painted into annotated images
    real_box_margin: int = 8  # px between a new rectangle and any real box (canvas annotated)
    # Which classes new defects get: real (the real boxes' class counts), uniform, or a YAML/JSON file
    # of class -> weight (e.g. a detector's per-class misses)
    class_mix: str = "real"

    def __post_init__(self) -> None:
        lo, hi = self.defects_per_image or (1, 1)
        if not 1 <= lo <= hi:
            raise ConfigError(f"defects_per_image must be 1 <= lo <= hi, got {list(self.defects_per_image)}")
        if self.structure_margin is not None and self.structure_margin < 0:
            raise ConfigError(f"structure_margin must be at least 0 (or null: no limit), got {self.structure_margin}")
        lo, hi = self.structure_fill
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"structure_fill must be 0 < lo <= hi <= 1 (a share of the hole's sides), got {list(self.structure_fill)}")
        if self.box_fade < 0:
            raise ConfigError(f"box_fade must be at least 0 (0: cut at the tight box), got {self.box_fade}")
        if self.edge_feather < 0:
            raise ConfigError(f"edge_feather must be at least 0 (0: a hard mask), got {self.edge_feather}")
        if self.colour not in ("painted", "surface"):
            raise ConfigError(f"colour must be painted or surface, got {self.colour!r}")
        if self.redraws < 0:
            raise ConfigError(f"redraws must be at least 0, got {self.redraws}")
        if not 0.0 <= self.canvas_share <= 1.0 or self.real_box_margin < 0:
            raise ConfigError(f"canvas_share must be in 0..1 and real_box_margin >= 0, got {self.canvas_share}, "
                              f"{self.real_box_margin}")
        if self.n_images < 1 or self.batch_size < 1:
            raise ConfigError(f"n_images and batch_size must be at least 1, got {self.n_images}, {self.batch_size}")


def generate_config(params: dict[str, Any] | None, profile: str | None, **overrides: Any) -> GenerateConfig:
    """The profile's `generate` section, then `overrides` (CLI flags; None means unset)."""
    return section_config(GenerateConfig, params, profile, "generate", **overrides)
