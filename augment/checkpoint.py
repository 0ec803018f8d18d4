"""MIDG checkpoints: safetensors weights plus JSON, never pickle.

```
CKPT_DIR/
  config.json             classes, crop_size, channels, context, min_window, profile, seed,
                          versions, networks (kwargs of each block), generator (the full
                          GeneratorConfig), sampler_stats, dataset summary, step
  generator.safetensors   inference weights of the three generator blocks (fp32, or fp16
                          with generator.fp16_export)
  library.safetensors     real defect patches / masks / edges (augment/library.py)
  stats.json              per-class box statistics for the rectangle sampler
  metrics.csv             losses, one row per log interval
  samples/step_NNNNNN.png sample grids during training
  train_state/last.safetensors + last.json   nets, discriminators, optimisers, rng: --resume
```

    gen = load_generator("runs/demo/generator")          # eval mode, no grad
    filled = gen.inpaint(crops, holes)
    edges = gen.draw_edges(filled, holes, class_ids, torch.Generator().manual_seed(0))
    defects = gen.paint(filled, edges, holes, class_ids)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from midg.datasets.atomic import atomic_dir, atomic_write_bytes, atomic_write_json, dumps_json
from midg.datasets.errors import DatasetError

from .blocks import build_generator_nets
from .blocks.layers import composite

CONFIG_FORMAT = "midg-generator-1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.safetensors"
STATE_DIR = "train_state"
REQUIRED_KEYS = ("format", "classes", "crop_size", "channels", "context", "min_window", "networks")
NETWORK_LIMITS = {"base": (1, 128), "res_blocks": (0, 8), "noise_channels": (1, 64)}  # what a config may ask for


# Generators shipped inside the package (augment/pretrained/NAME/): `--checkpoint NAME`.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint folder: the path as given when it exists, else a shipped generator of
    that name (`deeppcb`), else the path (whose absence the reader then reports)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = PRETRAINED_DIR / str(name_or_path)
    if str(name_or_path).isidentifier() and (shipped / CONFIG_FILE).is_file():
        return shipped
    return path


def shipped_generators() -> list[str]:
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_FILE).is_file()) if PRETRAINED_DIR.is_dir() else []


# Knobs that fix the networks' shapes: a fine-tune (--init) takes them from its start point.
ARCHITECTURE_KEYS = ("crop_size", "context", "min_window", "base_channels", "res_blocks", "noise_channels")


def init_generators(model, init_dir: str | Path, names: list[str]) -> dict[str, Any]:
    """Load a trained generator's blocks into `model` (a MIDGModel) for fine-tuning.

    Every tensor is copied as it is, except the class embeddings: a class of the new data
    with the same name keeps its trained row, other classes start fresh (the rows are
    matched by name, so a user's classes may be fewer, more or in another order). The
    discriminators start fresh. Returns what was kept, for the run's config.json."""
    init_dir = resolve_checkpoint(init_dir)
    gen = load_generator(init_dir)  # the hardened loader: safetensors + checked JSON, no pickle
    old_names = list(gen.config["classes"])
    kept = [n for n in names if n in old_names]
    for block, net in model.generators().items():
        target = net.state_dict()
        source = gen.nets[block].state_dict()
        for key, value in source.items():
            if key not in target:
                raise DatasetError(init_dir / CONFIG_FILE, f"block {block!r} has no tensor {key!r} here")
            if key.endswith("embed.weight"):
                for i, n in enumerate(names):
                    if n in old_names:
                        target[key][i] = value[old_names.index(n)].to(target[key].dtype)
            elif target[key].shape != value.shape:
                raise DatasetError(init_dir / CONFIG_FILE, f"block {block!r} tensor {key!r} is {list(value.shape)}, "
                                   f"this model needs {list(target[key].shape)} (other channels?)")
            else:
                target[key] = value.to(target[key].dtype)
        net.load_state_dict(target)
    return {"from": str(init_dir), "classes_kept": kept, "classes_new": [n for n in names if n not in old_names],
            "step": gen.config.get("step")}


# ---------------------------------------------------------------- reading helpers


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(path, "missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DatasetError(path, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    except RecursionError:
        raise DatasetError(path, "not a checkpoint file: JSON nested too deeply") from None


def _read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DatasetError(path, "missing")
    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise DatasetError(path, f"not a readable safetensors file ({exc})") from None


def load_checkpoint_config(ckpt_dir: str | Path) -> dict[str, Any]:
    """config.json of a generator checkpoint, checked for the keys inference needs."""
    ckpt_dir = resolve_checkpoint(ckpt_dir)
    path = Path(ckpt_dir) / CONFIG_FILE
    if not Path(ckpt_dir).is_dir():
        raise DatasetError(ckpt_dir, "checkpoint folder does not exist")
    config = _read_json(path)
    if not isinstance(config, dict):
        raise DatasetError(path, "top level is not a JSON object")
    if config.get("format") != CONFIG_FORMAT:
        raise DatasetError(path, f"format is {config.get('format')!r}, expected {CONFIG_FORMAT!r} "
                                 "(not a MIDG generator checkpoint?)")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise DatasetError(path, f"lacks {missing}")
    _check_config_values(config, path)
    return config


def _check_config_values(config: dict[str, Any], path: Path) -> None:
    """The values inference builds on have the right types (a hand-edited or hostile file
    gets a message, not a crash deep inside torch)."""
    classes = config["classes"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
        raise DatasetError(path, f"'classes' must be a non-empty list of class names, got {classes!r}")
    for key in ("crop_size", "min_window"):
        if not (isinstance(config[key], int) and not isinstance(config[key], bool) and 0 < config[key] <= 4096):
            raise DatasetError(path, f"{key!r} must be an integer 1..4096, got {config[key]!r}")
    if config["channels"] not in (1, 3) or isinstance(config["channels"], bool):
        raise DatasetError(path, f"'channels' must be 1 or 3, got {config['channels']!r}")
    if not (isinstance(config["context"], (int, float)) and 1.0 <= config["context"] <= 64.0):
        raise DatasetError(path, f"'context' must be a number 1..64, got {config['context']!r}")
    nets = config["networks"]
    if not (isinstance(nets, dict) and all(isinstance(v, dict) for v in nets.values())):
        raise DatasetError(path, "'networks' must map each block to its keyword arguments")
    # Sizes are bounded before anything is built: a hostile file must not make us allocate
    # gigabytes (base 128 with 8 res blocks is ~1 GB of weights; the paper profile uses 32/4).
    must_equal = {"channels": config["channels"], "num_classes": len(classes)}
    for block, kwargs in nets.items():
        for key, value in kwargs.items():
            if key in must_equal and value != must_equal[key]:
                raise DatasetError(path, f"networks.{block}.{key} is {value!r} but the checkpoint has {must_equal[key]}")
            low, high = NETWORK_LIMITS.get(key, (None, None))
            if low is not None and not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
                raise DatasetError(path, f"networks.{block}.{key} must be an integer {low}..{high}, got {value!r}")


# ---------------------------------------------------------------- writing


def save_config(ckpt_dir: str | Path, config: dict[str, Any]) -> None:
    atomic_write_json(Path(ckpt_dir) / CONFIG_FILE, {"format": CONFIG_FORMAT, **config})


def save_generator_weights(ckpt_dir: str | Path, tensors: dict[str, torch.Tensor], step: int) -> None:
    # One metadata key: safetensors writes its metadata map in a random order per process,
    # so two keys would make the same weights differ byte-wise between runs.
    data = save(tensors, metadata={"midg": json.dumps({"format": CONFIG_FORMAT, "step": step})})
    atomic_write_bytes(Path(ckpt_dir) / WEIGHTS_FILE, data)


def save_train_state(ckpt_dir: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """train_state/last.safetensors + last.json, swapped into place together."""
    step = meta["step"]
    with atomic_dir(Path(ckpt_dir) / STATE_DIR) as tmp:
        (tmp / "last.safetensors").write_bytes(save(tensors, metadata={"step": str(step)}))
        (tmp / "last.json").write_text(dumps_json(meta), encoding="utf-8")


def has_train_state(ckpt_dir: str | Path) -> bool:
    return (Path(ckpt_dir) / STATE_DIR / "last.json").is_file()


def load_train_state(ckpt_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = Path(ckpt_dir) / STATE_DIR
    meta = _read_json(state / "last.json")
    tensors = _read_safetensors(state / "last.safetensors")
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise DatasetError(state / "last.json", "lacks an integer 'step'")
    return tensors, meta


# ---------------------------------------------------------------- inference


class MIDGGenerator:
    """The three trained blocks for inference (eval mode, no grad, float32).

    Tensors are [B, C, S, S] crops in [0, 1] and [B, 1, S, S] holes (1 inside the
    rectangle); every output equals its input exactly outside the hole.
    """

    def __init__(self, config: dict[str, Any], nets: dict[str, torch.nn.Module], device: torch.device):
        self.config = config
        self.device = device
        self.nets = nets
        self.channels = int(config["channels"])
        self.num_classes = len(config["classes"])
        self.noise_channels = int(config["networks"]["edge"].get("noise_channels", 4))

    def _check(self, crops: torch.Tensor, holes: torch.Tensor, class_ids: torch.Tensor | None = None) -> None:
        if crops.ndim != 4 or crops.shape[1] != self.channels:
            raise ValueError(f"crops must be [B, {self.channels}, S, S], got {list(crops.shape)}")
        if holes.shape != (crops.shape[0], 1, *crops.shape[2:]):
            raise ValueError(f"holes must be [B, 1, S, S] matching crops {list(crops.shape)}, got {list(holes.shape)}")
        if crops.shape[-1] % 4 or crops.shape[-2] % 4:
            raise ValueError(f"crop sides must be multiples of 4, got {list(crops.shape[-2:])}")
        if class_ids is not None:
            if class_ids.shape != (crops.shape[0],):
                raise ValueError(f"class_ids must be [B], got {list(class_ids.shape)}")
            if len(class_ids) and (int(class_ids.min()) < 0 or int(class_ids.max()) >= self.num_classes):
                raise ValueError(f"class ids must be in 0..{self.num_classes - 1}")

    def _to(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        return [t.to(self.device, torch.float32) for t in tensors]

    @torch.no_grad()
    def inpaint(self, crops: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
        self._check(crops, holes)
        crops, holes = self._to(crops, holes)
        return composite(self.nets["inpaint"](image=crops, hole=holes), crops, holes)

    @torch.no_grad()
    def draw_edges(self, inpainted: torch.Tensor, holes: torch.Tensor, class_ids: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
        """Edge maps in [0, 1], zero outside the hole; the noise comes from `generator`."""
        self._check(inpainted, holes, class_ids)
        inpainted, holes = self._to(inpainted, holes)
        b, _, h, w = inpainted.shape
        noise = torch.randn((b, self.noise_channels, h, w), generator=generator,
                            device=generator.device).to(self.device)
        logits = self.nets["edge"](inpainted=inpainted, hole=holes, class_ids=class_ids.to(self.device), noise=noise)
        return torch.sigmoid(logits) * holes

    @torch.no_grad()
    def paint(self, inpainted: torch.Tensor, edges: torch.Tensor, holes: torch.Tensor,
              class_ids: torch.Tensor) -> torch.Tensor:
        self._check(inpainted, holes, class_ids)
        if edges.shape != holes.shape:
            raise ValueError(f"edges must be [B, 1, S, S] like holes, got {list(edges.shape)}")
        inpainted, edges, holes = self._to(inpainted, edges, holes)
        painted = self.nets["defect"](inpainted=inpainted, edges=edges * holes, hole=holes,
                                      class_ids=class_ids.to(self.device))
        return composite(painted, inpainted, holes)

    def generate(self, crops: torch.Tensor, holes: torch.Tensor, class_ids: torch.Tensor,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
        """All three stages: {"inpainted", "edges", "defect"}."""
        inpainted = self.inpaint(crops, holes)
        edges = self.draw_edges(inpainted, holes, class_ids, generator)
        return {"inpainted": inpainted, "edges": edges, "defect": self.paint(inpainted, edges, holes, class_ids)}


def load_generator(ckpt_dir: str | Path, device: str | torch.device = "cpu") -> MIDGGenerator:
    """The inference wrapper of a checkpoint folder (safetensors + JSON only; no pickle)."""
    ckpt_dir = resolve_checkpoint(ckpt_dir)
    config = load_checkpoint_config(ckpt_dir)
    device = torch.device(device)
    path = ckpt_dir / WEIGHTS_FILE
    tensors = _read_safetensors(path)
    try:
        nets = build_generator_nets(config["networks"])
    except Exception as exc:  # any kwargs torch refuses (negative sizes, wrong types, unknown names)
        raise DatasetError(ckpt_dir / CONFIG_FILE, f"bad 'networks' entry ({type(exc).__name__}: {exc})") from None
    for name, net in nets.items():
        prefix = f"{name}."
        sd = {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "mismatch"
            raise DatasetError(path, f"weights of block {name!r} do not fit config.json ({first})") from None
        net.to(device).eval().requires_grad_(False)
    return MIDGGenerator(config, nets, device)
