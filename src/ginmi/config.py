"""One typed configuration object per command, shared by the CLI, config files and the Python API.

A command's options are the fields of a dataclass; :func:`option` attaches the help text and
choices. A field whose type is itself such a dataclass is a group (e.g. the shared
:class:`~ginmi.training.TrainConfig`): its fields become options of the command too, so option
names are unique across groups. :func:`add_arguments` turns the fields into argparse options
(``n_samples`` -> ``--n-samples``), :func:`from_namespace` builds the dataclass back, and
:func:`flatten` / :func:`config_from_dict` convert to and from the flat key-value form used by
config files, so every option is declared exactly once.

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
import types
import typing
from typing import Any, Sequence, TypeVar

__all__ = ["option", "add_arguments", "from_namespace", "flatten", "config_from_dict"]

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
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
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


def config_from_dict(cls: type[T], values: dict[str, Any], *, strict: bool = True) -> T:
    """Build ``cls`` from flat ``{option: value}`` (dashes or underscores); unknown keys are an error."""
    values = {k.replace("-", "_"): v for k, v in values.items()}
    if strict:
        unknown = sorted(set(values) - _leaf_names(cls))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; known: {sorted(_leaf_names(cls))}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if _is_group(annotation):
            kwargs[f.name] = config_from_dict(annotation, values, strict=False)
        elif f.name in values:
            value = values[f.name]
            is_list = _base_type(annotation)[2]
            kwargs[f.name] = tuple(value) if is_list and isinstance(value, list) else value
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
