"""YAML configuration of the training stages, with command-line overrides.

Every stage is configured by one dataclass whose fields carry a ``help`` string in their
metadata (``field(default=..., metadata={"help": "..."})``) and whose ``__post_init__``
checks cross-field rules and raises ``ValueError`` naming the values and the fix.

A stage command accepts ``--config FILE.yaml`` and one ``--<field> VALUE`` flag per field.
Values are resolved in this order: dataclass default, then the YAML file, then the flags.
Flag values are parsed as YAML scalars or lists, so ``--reward_weights "[1, 0.5, 0.5]"``
and ``--bf16 true`` work.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from policy_trainer.errors import ConfigError

ConfigT = TypeVar("ConfigT")


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """Add ``--config`` and one override flag per field of ``config_cls`` to ``parser``."""
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML file with the stage's fields."
    )
    group = parser.add_argument_group(f"{config_cls.__name__} fields (override the YAML file)")
    for spec in dataclasses.fields(config_cls):
        if not spec.init:
            continue
        help_text = spec.metadata.get("help", "")
        default = _default_of(spec)
        if default is not dataclasses.MISSING:
            help_text = f"{help_text} (default: {default!r})"
        # SUPPRESS keeps flags that were not given out of the namespace, so they do not
        # overwrite values from the YAML file.
        group.add_argument(
            f"--{spec.name}", dest=spec.name, default=argparse.SUPPRESS, help=help_text,
            metavar=spec.name.upper(),
        )


def load_config(config_cls: type[ConfigT], args: argparse.Namespace) -> ConfigT:
    """Build ``config_cls`` from ``args.config`` (YAML) and the override flags in ``args``."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        values.update(read_yaml(args.config))

    specs = dataclasses.fields(config_cls)  # type: ignore[arg-type]
    known = {spec.name: spec for spec in specs if spec.init}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown field(s) {', '.join(unknown)} in {args.config}; "
            f"valid fields of {config_cls.__name__}: {', '.join(sorted(known))}"
        )
    for name in known:
        if name in vars(args):
            values[name] = _parse_flag(name, getattr(args, name))

    hints = typing.get_type_hints(config_cls)
    converted = {name: _coerce(name, value, hints[name]) for name, value in values.items()}
    try:
        return config_cls(**converted)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid {config_cls.__name__}: {error}") from error


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into a one-line ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of field: value, got {type(data).__name__}"
        )
    return data


def dump_config(config: Any, path: Path) -> None:
    """Write a config dataclass as YAML, so every run folder records its exact settings."""
    data = {key: _plain(value) for key, value in dataclasses.asdict(config).items()}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _default_of(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return dataclasses.MISSING


def _parse_flag(name: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"--{name} {raw!r} is not a valid value: {error}") from error


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Convert YAML values to the field's annotated type, or raise a ConfigError."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]

    if origin in (typing.Union, types.UnionType):
        for candidate in args:
            try:
                return _coerce(name, value, candidate)
            except ConfigError:
                continue
        raise ConfigError(f"field {name}: {value!r} does not fit the type {hint}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(choice) for choice in typing.get_args(hint))
            raise ConfigError(f"field {name}: {value!r} is not one of {choices}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        item_hint = args[0] if args else Any
        items = [_coerce(name, item, item_hint) for item in value]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"field {name}: expected a mapping, got {value!r}")
        return value
    return _coerce_scalar(name, value, hint)


def _coerce_scalar(name: str, value: Any, hint: Any) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"field {name}: expected true or false, got {value!r}")
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads exponents without a dot ("2e-4") as strings.
        try:
            return float(value)
        except ValueError:
            pass
    if hint is str:
        return str(value)
    if hint is Path:
        return Path(str(value))
    raise ConfigError(
        f"field {name}: expected {getattr(hint, '__name__', hint)}, got {value!r}"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
