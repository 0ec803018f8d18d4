"""params.yaml: profiles of typed sections, filled into small frozen dataclasses.

```yaml
profile: demo            # the chosen profile is itself a param (`dvc exp run -S profile=paper`)
profiles:
  demo:
    data: {...}          # one section per stage; a stage reads only its own section
    generator: {...}
```
An unknown profile, section key or choice is a ConfigError that lists the valid ones.

Which file: `--params FILE` when given, else `./params.yaml` when the working directory has
one, else the profiles built into the package. The built-in file IS the repository's
params.yaml (the repo root is the `midg` package; pyproject ships it as package data),
so there is one source of defaults. Commands print the file they used (`params: ...`).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError
from .yolo import read_text

T = TypeVar("T")


PARAMS_NAME = "params.yaml"
# The package root (this file is midg/datasets/params.py); in a clone it is the repo root.
PACKAGED_PARAMS = Path(__file__).resolve().parents[1] / PARAMS_NAME


def find_params(path: str | Path | None = None) -> Path:
    """The params file to use: `path` (must exist), else ./params.yaml, else the packaged one."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: params file not found")
        return path
    here = Path(PARAMS_NAME)
    if here.is_file():
        return here
    if PACKAGED_PARAMS.is_file():
        return PACKAGED_PARAMS
    raise ConfigError(f"no {PARAMS_NAME} in {Path.cwd()} and none in the package: pass --params FILE")


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """Parse the params file `find_params(path)` picks."""
    path = find_params(path)
    try:
        doc = yaml.safe_load(read_text(path))
    except (yaml.YAMLError, RecursionError) as exc:  # (nesting beyond Python's stack: a hostile file)
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("profiles"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'profiles' mapping")
    return doc


def profile_section(params: dict[str, Any], profile: str | None, section: str) -> dict[str, Any]:
    """The `section` of `profile` (default: the file's `profile` key)."""
    profiles = params["profiles"]
    profile = profile or params.get("profile")
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(profiles)}")
    sec = profiles[profile].get(section, {})
    if not isinstance(sec, dict):
        raise ConfigError(f"profiles.{profile}.{section} must be a mapping")
    return dict(sec)


def fill(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `values`; unknown keys and wrong types are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, val in values.items():
        kwargs[key] = _coerce(val, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _coerce(val: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(val, bool):
            return val
        raise ConfigError(f"{where}: expected true/false, got {val!r}")
    if hint is int:
        if isinstance(val, int) and not isinstance(val, bool):
            return val
        raise ConfigError(f"{where}: expected an integer, got {val!r}")
    if hint is float:
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            try:
                number = float(val)
            except OverflowError:  # an integer beyond any float
                number = math.inf
            if math.isfinite(number):
                return number
        raise ConfigError(f"{where}: expected a finite number, got {val!r}")
    if hint is str:
        if isinstance(val, str):
            return val
        raise ConfigError(f"{where}: expected a string, got {val!r}")
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if val in choices:
            return val
        raise ConfigError(f"{where}: {val!r} is not one of {list(choices)}")
    if origin in (tuple, list):
        if not isinstance(val, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {val!r}")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[int, int]: exactly that many
            if len(val) != len(args):
                raise ConfigError(f"{where}: expected a list of {len(args)} values, got {val!r}")
            return tuple(v if a is Any else _coerce(v, a, where) for v, a in zip(val, args))
        inner = args[0] if args else Any
        items = [val_ if inner is Any else _coerce(val_, inner, where) for val_ in val]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(val, dict):
            raise ConfigError(f"{where}: expected a mapping, got {val!r}")
        key_hint, value_hint = typing.get_args(hint) or (Any, Any)
        return {(k if key_hint is Any else _coerce(k, key_hint, where)):
                (v if value_hint is Any else _coerce(v, value_hint, f"{where}.{k}")) for k, v in val.items()}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = typing.get_args(hint)
        if val is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(val, a, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {val!r} does not fit {hint}")
    return val


def section_config(cls: type[T], params: dict[str, Any] | None, profile: str | None, section: str,
                   **overrides: Any) -> T:
    """`cls` from the profile's `section` (when params are given), then `overrides` (CLI
    flags; None means unset): the one way every stage fills its config."""
    values = profile_section(params, profile, section) if params is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    where = f"params profiles.{profile or params.get('profile')}.{section}" if params is not None else section
    return fill(cls, values, where)


def as_dict(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
