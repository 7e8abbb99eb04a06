"""Stage configs of sft, grpo and evaluate: method defaults, YAML files and CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from policy_trainer.cli import main
from policy_trainer.errors import ConfigError
from policy_trainer.evaluate import EvaluateConfig
from policy_trainer.grpo import GRPOStageConfig
from policy_trainer.sft import SFTStageConfig

CONFIG_DIR = Path(__file__).parents[2] / "services/policy_trainer/policy_trainer/configs"
RECORDS = Path(__file__).parent / "data" / "chat_records.jsonl"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def write_yaml(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_grpo_config_defaults_follow_method() -> None:
    config = GRPOStageConfig(train_file=RECORDS)
    assert config.num_generations == 8
    assert config.beta == 0.5
    assert config.reward_weights == [1.0, 0.5, 0.5]
    assert config.lora_target_modules == ["all-linear"]
    assert config.use_vllm is False


def test_grpo_config_maps_onto_trl() -> None:
    from policy_trainer.grpo import build_grpo_arguments

    config = GRPOStageConfig(train_file=RECORDS, output_dir=Path("unused"))
    args = build_grpo_arguments(config)
    assert args.num_generations == 8
    assert args.beta == 0.5
    assert args.reward_weights == [1.0, 0.5, 0.5]
    assert args.max_completion_length == config.max_completion_length
    assert args.loss_type == "grpo"
    assert args.use_vllm is False


def test_grpo_config_passes_vllm_options() -> None:
    from policy_trainer.grpo import build_grpo_arguments

    config = GRPOStageConfig(train_file=RECORDS, use_vllm=True, vllm_mode="server",
                             vllm_server_base_url="http://127.0.0.1:8001")
    args = build_grpo_arguments(config)
    assert args.use_vllm is True
    assert args.vllm_mode == "server"
    assert args.vllm_server_base_url == "http://127.0.0.1:8001"


def test_sft_config_trains_lm_head_with_all_linear_lora() -> None:
    config = SFTStageConfig(train_file=RECORDS)
    assert config.train_lm_head is True
    assert config.assistant_only_loss is True
    assert config.lora_target_modules == ["all-linear"]


@pytest.mark.parametrize("name", ["cpu_smollm2_sft", "cpu_smollm2_grpo", "cpu_smollm2_evaluate",
                                  "gpu_grpo_vllm"])
def test_packaged_configs_load(name: str) -> None:
    from argparse import Namespace

    from policy_trainer.config import load_config

    cls = {"sft": SFTStageConfig, "evaluate": EvaluateConfig}.get(name.rsplit("_", 1)[-1],
                                                                   GRPOStageConfig)
    config = load_config(cls, Namespace(config=CONFIG_DIR / f"{name}.yaml"))
    if isinstance(config, GRPOStageConfig):
        assert (config.num_generations, config.beta) == (8, 0.5)
        assert config.reward_weights == [1.0, 0.5, 0.5]


def test_grpo_cli_unknown_field_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "grpo.yaml", {"train_file": str(RECORDS), "num_generation": 8})
    code, err = run_cli(capsys, "grpo", "--config", str(path))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "unknown field(s) num_generation" in err


def test_grpo_cli_bad_value_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "grpo.yaml", {"train_file": str(RECORDS)})
    code, err = run_cli(capsys, "grpo", "--config", str(path), "--num_generations", "1")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "num_generations must be >= 2" in err


def test_grpo_cli_wrong_weight_count_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "grpo", "--train_file", str(RECORDS), "--reward_weights", "[1, 2]")
    assert code == 2
    assert "reward_weights needs 3 values" in err


def test_grpo_cli_bad_reward_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "grpo", "--train_file", str(RECORDS),
                        "--reward_options", "{metric: cosine}")
    assert code == 2
    assert "reward_options" in err


def test_grpo_cli_batch_not_multiple_of_group_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_model_dir: Path
) -> None:
    code, err = run_cli(capsys, "grpo", "--train_file", str(RECORDS), "--model_path",
                        str(tiny_model_dir), "--output_dir", str(tmp_path),
                        "--per_device_train_batch_size", "6")
    assert code == 2
    assert "must be divisible by num_generations" in err


def test_sft_cli_missing_train_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "sft")
    assert code == 2
    assert "train_file is required" in err


def test_sft_cli_missing_model_folder_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_cli(capsys, "sft", "--train_file", str(RECORDS), "--output_dir",
                        str(tmp_path), "--model_path", str(tmp_path / "nothing"))
    assert code == 2
    assert "is not a model folder" in err


def test_grpo_cli_resume_without_checkpoint_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_cli(capsys, "grpo", "--train_file", str(RECORDS), "--output_dir",
                        str(tmp_path), "--resume", "true")
    assert code == 2
    assert "contains no checkpoint-N folder" in err


def test_read_records_names_bad_line(tmp_path: Path) -> None:
    from policy_trainer.chat_data import read_records

    path = tmp_path / "bad.jsonl"
    good = RECORDS.read_text().splitlines()[0]
    path.write_text(good + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}))
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: the last message must be the assistant"):
        read_records(path)


def test_prompt_rows_split_prompt_and_references() -> None:
    from policy_trainer.chat_data import prompt_rows, read_records

    row = prompt_rows(read_records(RECORDS))[0]
    assert [message["role"] for message in row["prompt"]] == ["system", "user"]
    assert row["reference"].startswith("There is a small left pleural effusion")
    assert row["reference_answer"] == "yes"
    assert row["id"] == "qa-00"


def test_cli_unknown_log_level_exits_2(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--log-level", "verbose", "sft", "--help"])

    assert stopped.value.code == 2
    assert "invalid choice: 'VERBOSE'" in capsys.readouterr().err
