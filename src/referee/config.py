"""The one config toolkit: a job's settings are a dataclass whose fields carry their help, their
allowed values and ranges; construction checks every field, YAML files set fields by name, and the
command line's flags are generated from the same fields.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Job(Config):
    ...     epochs: int = option(3, "passes over the data", low=1)
    ...     kind: str = option("fast", "how to run", choices=("fast", "slow"))
    >>> Job(epochs=2).epochs
    2
    >>> Job(epochs=0)
    Traceback (most recent call last):
    ...
    referee.config.ConfigError: Job: field 'epochs': expected an integer >= 1, got 0
    >>> Job.help()["kind"]
    'how to run'
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import yaml

from referee.errors import UserError


class ConfigError(UserError, ValueError):
    """A config value that cannot work: names the field, the bad value and what was expected.

    >>> from referee.jobs.config import TrainConfig
    >>> TrainConfig(task="judge")
    Traceback (most recent call last):
    ...
    referee.config.ConfigError: TrainConfig: field 'task': expected one of ('score', 'pair', 'safety', 'reward'), got 'judge'
    """


def option(default, help: str, *, choices: tuple | None = None, low: float | None = None,
           high: float | None = None, open: bool = False):
    """A config field: its default, one line of help, and what it accepts.

    choices: the allowed values; low / high: bounds of a number (inclusive, or exclusive with `open`).
    The type comes from the annotation (`int`, `float`, `bool`, `str`, `dict`, `list[str]` (a repeatable
    flag), each `| None` allowed)."""
    return field(default=default, metadata={"help": help, "choices": choices, "low": low, "high": high, "open": open})


def _kind(cls, name: str) -> tuple[type, bool]:
    """(the base type, whether None is allowed) of a field's annotation."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else ()
    if args:
        hint, optional = next(a for a in args if a is not type(None)), type(None) in args
    else:
        optional = False
    return typing.get_origin(hint) or hint, optional  # list[str] -> list


def _expected(kind: type, meta: dict) -> str:
    if meta["choices"] is not None:
        return f"one of {meta['choices']}"
    if kind is bool:
        return "true or false"
    if kind is dict:
        return "a mapping"
    if kind is str:
        return "a non-empty string"
    if kind is list:
        return "a list of non-empty strings"
    low, high = meta["low"], meta["high"]
    if kind is int:
        return f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if low is None and high is None:
        return "a number"
    left = "(" if meta["open"] or low is None else "["
    right = ")" if meta["open"] or high is None else "]"
    return f"a number in {left}{-math.inf if low is None else low}, {math.inf if high is None else high}{right}"


def _fits(kind: type, meta: dict, value) -> bool:
    if meta["choices"] is not None:
        return value in meta["choices"]
    if kind is bool or kind is dict:
        return isinstance(value, kind)
    if kind is str:
        return isinstance(value, str) and value != ""
    if kind is list:
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        return False
    low, high, strict = meta["low"], meta["high"], meta["open"]
    return ((low is None or (value > low if strict else value >= low))
            and (high is None or (value < high if strict else value <= high)))


@dataclass
class Config:
    """Base of every job config: checks its fields on construction, reads YAML, lists its help."""

    yaml_section: ClassVar[str | None] = None  # a YAML file may keep these fields under this key

    def __post_init__(self):
        for f in fields(self):
            kind, optional = _kind(type(self), f.name)
            value = getattr(self, f.name)
            if value is None and optional:
                continue
            if not _fits(kind, f.metadata, value):
                expected = _expected(kind, f.metadata) + (" or null" if optional else "")
                raise ConfigError(f"{type(self).__name__}: field {f.name!r}: expected {expected}, got {value!r}")
            if kind is float:
                setattr(self, f.name, float(value))
        self.check()

    def check(self) -> None:
        """Checks across fields (a subclass adds its own); each field alone is checked already."""

    @classmethod
    def from_yaml(cls, path: str | Path | None, **overrides):
        """Fields from a YAML mapping (if `path` is given), then `overrides` that are not None on top
        (flags given on the command line). An unknown key is an error, not silently ignored: a typo
        would otherwise train with a default."""
        data = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"{path}: no such config file")
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError) as err:
                raise ConfigError(f"{path}: not valid YAML: {err}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping of field: value, got {type(data).__name__}")
            if cls.yaml_section and isinstance(data.get(cls.yaml_section), dict):
                data = data[cls.yaml_section]
            data = {str(k).replace("-", "_"): v for k, v in data.items()}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, str(path) if path is not None else cls.__name__)

    @classmethod
    def from_dict(cls, data: dict, where: str):
        """The config of a mapping of field: value; `where` names its source in the error on an
        unknown key."""
        unknown = sorted(set(data) - set(cls.help()))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(cls.help())}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        """field name -> one-line help (for the CLI and the README)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


def add_flags(parser: argparse.ArgumentParser, cls: type[Config], *, prefix: str = "", skip=()) -> None:
    """One flag per field of `cls` (`--batch-size`; with prefix "finetune": `--finetune-batch-size`),
    default None so that an absent flag leaves the YAML's value; booleans get `--x` / `--no-x`.
    Fields holding a mapping are YAML-only."""
    for f in fields(cls):
        kind, _ = _kind(cls, f.name)
        if f.name in skip or kind is dict:
            continue
        flag = "--" + "-".join(p for p in (prefix, f.name.replace("_", "-")) if p)
        dest = "_".join(p for p in (prefix, f.name) if p)
        if kind is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                help=f.metadata["help"])
        elif kind is list:  # repeatable: --data A --data B
            parser.add_argument(flag, dest=dest, action="append", default=None, help=f.metadata["help"])
        else:
            parser.add_argument(flag, dest=dest, type=kind, choices=f.metadata["choices"], default=None,
                                help=f.metadata["help"])


def flag_values(args: argparse.Namespace, cls: type[Config], *, prefix: str = "") -> dict:
    """The fields of `cls` given as flags (those not None), by field name."""
    given = {}
    for f in fields(cls):
        dest = "_".join(p for p in (prefix, f.name) if p)
        value = vars(args).get(dest)
        if value is not None:
            given[f.name] = value
    return given


__all__ = ["Config", "ConfigError", "option", "add_flags", "flag_values"]
