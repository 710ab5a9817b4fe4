"""TOML -> typed, validated experiment config, with clear errors.

An experiment declares a frozen dataclass `Config`; fields may be bool, int, float, str,
`Literal[...]`, `list[T]`, `tuple[T, ...]` or nested dataclasses (TOML tables). Bounds
go in field metadata: `field(default=1e-3, metadata={"min": 0, "max": 1})`; `"min_exclusive"`
/ `"max_exclusive"` for strict bounds. Floats must be finite (`"finite": False` in
the metadata admits +-inf, never NaN); integers must fit in 64 bits.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

_INT64 = (-(2**63), 2**63 - 1)


class ConfigError(Exception):
    """A config that cannot run; the message names the file, the key and what is allowed."""


def parse_override(text: str, source: str = "--set") -> tuple[list[str], Any]:
    """Parses `key.sub=value`; the value is read as TOML (a bare word is a string)."""
    if "=" not in text:
        raise ConfigError(f"{source}: expected key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{source}: malformed key in {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a .toml config file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    data = _deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: {k!r} is not a table")
        node[keys[-1]] = value
    return data


def build_config(cls: type, data: dict, source: str, prefix: str = "") -> Any:
    """Validates `data` against the dataclass `cls`; gives an instance or raises ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, list(fields), n=1)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
        allowed = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{prefix}{k}'{hint} (allowed keys: {allowed})")
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{key}'")
            continue
        kwargs[name] = _convert(hints[name], data[name], source, key, f.metadata)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # a __post_init__ cross-field check
        raise ConfigError(f"{source}: {e}") from None


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def to_toml(data: dict) -> str:
    """Writes a dict of TOML-representable values (scalars, lists, nested tables)."""
    lines: list[str] = []
    _emit(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


# --- internals ---------------------------------------------------------------------


def _deepcopy(d):
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


def _typename(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = _typename(args[0]) if args else "any"
        return f"a list of {inner}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_typename(a) for a in typing.get_args(tp))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _bounds(metadata) -> str:
    parts = []
    if "min" in metadata:
        parts.append(f">= {metadata['min']}")
    if "min_exclusive" in metadata:
        parts.append(f"> {metadata['min_exclusive']}")
    if "max" in metadata:
        parts.append(f"<= {metadata['max']}")
    if "max_exclusive" in metadata:
        parts.append(f"< {metadata['max_exclusive']}")
    return " and ".join(parts)


def _fail(source, key, value, tp, metadata=None) -> ConfigError:
    want = _typename(tp)
    bounds = _bounds(metadata or {})
    if bounds:
        want += " " + bounds
    return ConfigError(
        f"{source}: key '{key}': got {value!r} ({type(value).__name__}), expected {want}"
    )


def _convert(tp, value, source, key, metadata):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, key, metadata)
            except ConfigError:
                pass
        raise _fail(source, key, value, tp, metadata)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or type(value) is not type(choices[0]):
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{source}: key '{key}': got {value!r}, expected one of "
                f"{', '.join(repr(c) for c in choices)}{hint}"
            )
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _fail(source, key, value, tp)
        return build_config(tp, value, source, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise _fail(source, key, value, tp, metadata)
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else Any
        items = [
            _convert(inner, v, source, f"{key}[{i}]", metadata) if inner is not Any else v
            for i, v in enumerate(value)
        ]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(source, key, value, tp)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, key, value, tp, metadata)
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(source, key, value, tp, metadata)
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise _fail(source, key, value, tp)
        if "choices" in metadata and value not in metadata["choices"]:
            raise ConfigError(
                f"{source}: key '{key}': got {value!r}, expected one of "
                f"{', '.join(repr(c) for c in metadata['choices'])}"
            )
        return value
    elif tp is not Any:
        raise ConfigError(f"{source}: key '{key}': unsupported field type {tp!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        allow_inf = metadata.get("finite", True) is False
        if isinstance(value, float) and (value != value or (math.isinf(value) and not allow_inf)):
            raise ConfigError(
                f"{source}: key '{key}': got {value!r}, expected a finite number"
                + (f" {_bounds(metadata)}" if _bounds(metadata) else "")
            )
        if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            raise ConfigError(
                f"{source}: key '{key}': got {value}, expected an integer that fits in 64 bits"
            )
        lo, hi = metadata.get("min"), metadata.get("max")
        lo_x, hi_x = metadata.get("min_exclusive"), metadata.get("max_exclusive")
        if (
            (lo is not None and value < lo)
            or (hi is not None and value > hi)
            or (lo_x is not None and value <= lo_x)
            or (hi_x is not None and value >= hi_x)
        ):
            raise _fail(source, key, value, tp, metadata)
    return value


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return (
            repr(v)
            if v == v and v not in (float("inf"), float("-inf"))
            else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
        )
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if v is None:
        raise ValueError("TOML has no null")
    raise ValueError(f"cannot write {type(v).__name__} to TOML")


def _emit(d: dict, path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    if path:
        lines.append("")
        lines.append("[" + ".".join(path) + "]")
    for k, v in scalars.items():
        lines.append(f"{k} = {_scalar(v)}")
    for k, v in tables.items():
        _emit(v, [*path, k], lines)
