"""policy-trainer demo: command-line checks that need no service or model."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_trainer.cli import main
from policy_trainer.demo import parse_overrides
from policy_trainer.errors import ConfigError


def test_parse_overrides_reads_yaml_values() -> None:
    parsed = parse_overrides(["grpo.max_steps=20", "grpo.reward_weights=[1, 0, 0]",
                              "evaluate.limit=null"])
    assert parsed == {"grpo": {"max_steps": 20, "reward_weights": [1, 0, 0]},
                      "evaluate": {"limit": None}}


@pytest.mark.parametrize("text", ["grpo.max_steps", "max_steps=3", ".max_steps=3"])
def test_parse_overrides_rejects_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match="stage.field=value"):
        parse_overrides([text])


def test_parse_overrides_rejects_unknown_stage() -> None:
    with pytest.raises(ConfigError, match="unknown stage 'grop'"):
        parse_overrides(["grop.max_steps=3"])


def test_demo_cli_rejects_unknown_scale(capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SCALE", "huge")
    assert main(["demo"]) == 2
    assert "scale 'huge' (from --scale or $DEMO_SCALE) is not one of tiny, small, full" in (
        capsys.readouterr().err)


def test_demo_cli_rejects_missing_reports(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    assert main(["demo", "--scale", "tiny", "--reports", str(tmp_path / "none.tgz")]) == 2
    assert "is not a file" in capsys.readouterr().err
