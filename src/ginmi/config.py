"""One typed configuration object per command, shared by the CLI, config files and the Python API.

A command's options are the fields of a dataclass; :func:`option` attaches the help text and
choices. A field whose type is itself such a dataclass is a group (e.g. the shared
:class:`~ginmi.training.TrainConfig`): its fields become options of the command too, so option
names are unique across groups. :func:`add_arguments` turns the fields into argparse options
(``n_samples`` -> ``--n-samples``), :func:`from_namespace` builds the dataclass back, and
:func:`flatten` / :func:`config_from_dict` convert to and from the flat key-value form used by
config files, so every option is declared exactly once. :func:`read_config_file` reads such a
file (TOML, flat ``option = value`` keys, as the CLI's ``--config FILE``) and :func:`to_toml` /
:func:`write_config_file` write one (``None`` is written as the string ``"none"``, which
:func:`config_from_dict` maps back to ``None`` for optional options).

Example:
    >>> from dataclasses import dataclass
    >>> import argparse
    >>> @dataclass
    ... class Demo:
    ...     n_samples: int = option(100, "how many samples")
    ...     mode: str = option("a", "which mode", choices=("a", "b"))
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser, Demo)
    >>> from_namespace(Demo, parser.parse_args(["--n-samples", "7"]))
    Demo(n_samples=7, mode='a')
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import numbers
import os
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "option",
    "add_arguments",
    "from_namespace",
    "flatten",
    "config_from_dict",
    "option_names",
    "read_config_file",
    "to_toml",
    "write_config_file",
]

T = TypeVar("T")


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None, cli: bool = True) -> Any:
    """A dataclass field with a default, a help text and optional choices."""
    meta = {"help": help, "choices": choices, "cli": cli}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> tuple[type, bool, bool]:
    """(element type, optional?, list?) of a field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)][0]
        base, _, is_list = _base_type(inner)
        return base, True, is_list
    if origin in (list, tuple, Sequence):
        return args[0], False, True
    return annotation, False, False


def _parse_optional(base: type) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "") else base(text)

    return parse


def _is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, title: str | None = None) -> None:
    """Add one option per field of the dataclass ``cls`` (and of its groups) to ``parser``."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title) if title else parser
    for f in dataclasses.fields(cls):
        if _is_group(hints[f.name]):
            add_arguments(parser, hints[f.name], title=f.metadata.get("help", f.name))
            continue
        if not f.metadata.get("cli", True):
            continue
        base, optional, is_list = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif is_list:
            kwargs.update(nargs="+", type=base)
        else:
            kwargs["type"] = _parse_optional(base) if optional else base
            if not f.metadata.get("choices"):
                kwargs["metavar"] = f.name.upper()
        group.add_argument(_flag(f.name), **kwargs)


def from_namespace(cls: type[T], namespace: argparse.Namespace, base: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from parsed arguments; options given override the flat dict ``base`` (a file)."""
    values = dict(base or {})
    values.update(vars(namespace))
    return config_from_dict(cls, values, strict=False)


def _leaf_names(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    names: set[str] = set()
    for f in dataclasses.fields(cls):
        names |= _leaf_names(hints[f.name]) if _is_group(hints[f.name]) else {f.name}
    return names


def option_names(cls: type) -> list[str]:
    """Sorted names of every option of the config dataclass ``cls`` (its groups included).

    Example:
        >>> from ginmi.training import TrainConfig
        >>> {"epochs", "lr", "seed"} <= set(option_names(TrainConfig))
        True
    """
    return sorted(_leaf_names(cls))


def _coerce(name: str, value: Any, annotation: Any, choices: Sequence[Any] | None) -> Any:
    """``value`` as the type of the option ``name``, or a ValueError naming the option."""
    base, optional, is_list = _base_type(annotation)
    if optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    if is_list:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_coerce_scalar(name, v, base) for v in items)
    value = _coerce_scalar(name, value, base)
    if choices and value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")
    return value


def _coerce_scalar(name: str, value: Any, base: Any) -> Any:
    ok = True
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(float(value))
        else:
            ok = False
    elif base is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = float(value)
        else:
            ok = False
    elif base is str:
        ok = isinstance(value, str)
    if not ok:
        type_name = getattr(base, "__name__", str(base))
        raise ValueError(f"option {name!r} must be {type_name}, got {value!r} ({type(value).__name__})")
    return value


def config_from_dict(cls: type[T], values: dict[str, Any], *, strict: bool = True) -> T:
    """Build ``cls`` from flat ``{option: value}`` (dashes or underscores); unknown keys are an error.

    Values are checked against the option's type (ints are accepted for floats) and choices;
    ``None`` or the string ``"none"`` gives ``None`` for optional options, lists give tuples.
    With ``strict=False`` unknown keys are ignored.

    Example:
        >>> from ginmi.training import TrainConfig
        >>> config_from_dict(TrainConfig, {"epochs": 3, "grad-clip": "none", "lr": 1}).grad_clip is None
        True
    """
    values = {k.replace("-", "_"): v for k, v in values.items()}
    if strict:
        unknown = sorted(set(values) - _leaf_names(cls))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; known: {sorted(_leaf_names(cls))}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        annotation = hints[f.name]
        if _is_group(annotation):
            kwargs[f.name] = config_from_dict(annotation, values, strict=False)
        elif f.name in values:
            kwargs[f.name] = _coerce(f.name, values[f.name], annotation, f.metadata.get("choices"))
    return cls(**kwargs)


def flatten(config: Any) -> dict[str, Any]:
    """Flat ``{option: value}`` view of a config and its groups (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value))
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def read_config_file(path: str | os.PathLike, cls: type | None = None) -> dict[str, Any]:
    r"""Flat ``{option: value}`` of a TOML config file, keys with underscores.

    Keys are option names with underscores or dashes (``n_samples`` or ``n-samples``); a table
    (``[train]``) is read as a group of such keys, its name is only for the reader. With ``cls``,
    keys that are no option of ``cls`` raise a ValueError naming the key and the file.

    Example:
        >>> import tempfile, pathlib
        >>> from ginmi.training import TrainConfig
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.toml"
        >>> _ = path.write_text('epochs = 2\n[optimiser]\nlr = 0.5\n')
        >>> read_config_file(path, TrainConfig)
        {'epochs': 2, 'lr': 0.5}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such config file: {path}")
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"config file {path} is not valid TOML: {err}") from err
    flat: dict[str, Any] = {}

    def add(key: str, value: Any) -> None:
        name = key.replace("-", "_")
        if name in flat:
            raise ValueError(f"option {key!r} is given twice in config file {path}")
        flat[name] = value

    for key, value in raw.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                if isinstance(sub_value, dict):
                    raise ValueError(f"config file {path}: nested table [{key}.{sub_key}]; use flat keys")
                add(sub_key, sub_value)
        else:
            add(key, value)
    if cls is not None:
        known = _leaf_names(cls)
        for name in flat:
            if name not in known:
                raise ValueError(
                    f"unknown option {name!r} in config file {path}; known options: {', '.join(sorted(known))}"
                )
    return flat


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, os.PathLike):
        return _toml_value(os.fspath(value))
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def to_toml(flat: dict[str, Any], *, header: str = "", comment_out: Sequence[str] = ()) -> str:
    """TOML text of a flat ``{option: value}`` dict (scalars and lists; ``None`` as ``"none"``).

    ``header`` lines become comments at the top; options in ``comment_out`` are written
    commented out (kept for the reader, not read back).

    Example:
        >>> print(to_toml({"epochs": 2, "milestones": (0.5, 0.8), "k": None, "out": "runs/a"},
        ...               comment_out=["out"]))
        epochs = 2
        milestones = [0.5, 0.8]
        k = "none"
        # out = "runs/a"
        <BLANKLINE>
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for key, value in flat.items():
        line = f"{key} = {_toml_value(value)}"
        lines.append(f"# {line}" if key in comment_out else line)
    return "\n".join(lines) + "\n"


def write_config_file(
    path: str | os.PathLike, config: Any, *, header: str = "", comment_out: Sequence[str] = ()
) -> None:
    """Write the config dataclass ``config`` (or a flat dict) as TOML, atomically; read it back
    with :func:`read_config_file`."""
    from ginmi.io import atomic_write_text

    flat = config if isinstance(config, dict) else flatten(config)
    atomic_write_text(path, to_toml(flat, header=header, comment_out=comment_out))
