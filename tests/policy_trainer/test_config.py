from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from policy_trainer.config import add_config_arguments, dump_config, load_config, read_yaml
from policy_trainer.errors import ConfigError


@dataclasses.dataclass
class ExampleConfig:
    learning_rate: float = dataclasses.field(default=1e-4, metadata={"help": "Learning rate."})
    reward_weights: list[float] = dataclasses.field(
        default_factory=lambda: [1.0, 0.5, 0.5], metadata={"help": "Reward weights."}
    )
    mode: Literal["fast", "full"] = dataclasses.field(default="fast", metadata={"help": "Mode."})
    output_dir: Path | None = dataclasses.field(default=None, metadata={"help": "Run folder."})
    bf16: bool = dataclasses.field(default=False, metadata={"help": "Use bfloat16."})

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


def _load(argv: list[str]) -> ExampleConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ExampleConfig)
    return load_config(ExampleConfig, parser.parse_args(argv))


def test_load_config_defaults() -> None:
    assert _load([]) == ExampleConfig()


def test_load_config_flag_overrides_yaml(tmp_path: Path) -> None:
    path = tmp_path / "stage.yaml"
    path.write_text("learning_rate: 0.001\nmode: full\n")

    config = _load(["--config", str(path), "--learning_rate", "0.01", "--bf16", "true"])

    assert config.learning_rate == 0.01
    assert config.mode == "full"
    assert config.bf16 is True


def test_load_config_float_exponent_without_dot() -> None:
    config = _load(["--learning_rate", "2e-4"])

    assert config.learning_rate == 2e-4


def test_load_config_float_rejects_word() -> None:
    with pytest.raises(ConfigError, match="expected float, got 'fast'"):
        _load(["--learning_rate", "fast"])


def test_load_config_parses_list_and_path() -> None:
    config = _load(["--reward_weights", "[2, 1, 0]", "--output_dir", "runs/x"])

    assert config.reward_weights == [2.0, 1.0, 0.0]
    assert config.output_dir == Path("runs/x")


def test_load_config_unknown_yaml_field(tmp_path: Path) -> None:
    path = tmp_path / "stage.yaml"
    path.write_text("learning_rat: 0.001\n")

    with pytest.raises(ConfigError, match="unknown field.*learning_rat"):
        _load(["--config", str(path)])


def test_load_config_bad_literal() -> None:
    with pytest.raises(ConfigError, match="'slow' is not one of"):
        _load(["--mode", "slow"])


def test_load_config_post_init_error_names_value() -> None:
    with pytest.raises(ConfigError, match="learning_rate must be > 0, got -1"):
        _load(["--learning_rate", "-1"])


def test_read_yaml_rejects_non_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")

    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_yaml(path)


def test_read_yaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_yaml(tmp_path / "absent.yaml")


def test_dump_config_round_trip(tmp_path: Path) -> None:
    config = ExampleConfig(learning_rate=0.5, output_dir=Path("out"))
    path = tmp_path / "config.yaml"

    dump_config(config, path)

    assert _load(["--config", str(path)]) == config
