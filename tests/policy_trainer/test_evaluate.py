"""policy-trainer evaluate: metric arithmetic, and a real run against the reward server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kg_reward.client import ScoreResult
from kg_schema.scoring import Components, Explanation, SetComparison
from policy_trainer.evaluate import summarize

WEIGHTS = [1.0, 0.5, 0.5]


def comparison(matched: int, extra: int, missing: int) -> SetComparison:
    return SetComparison(matched=[["m", "x"]] * matched, extra=[["e", "x"]] * extra,
                         missing=[["s", "x"]] * missing)


def test_summarize_micro_precision_recall() -> None:
    result = ScoreResult(
        rewards=[1.5, 0.25, None],
        components=[Components(answer=1.0, entity=0.5, relation=0.5),
                    Components(answer=0.0, entity=0.5, relation=0.0), None],
        explanations=[
            Explanation(entities=comparison(2, 1, 1), relations=comparison(1, 0, 1)),
            Explanation(entities=comparison(1, 1, 0), relations=comparison(0, 2, 1)),
            None,
        ],
        errors=[None, None, None],
    )
    metrics = summarize(result, WEIGHTS)
    assert metrics["n_items"] == 3
    assert metrics["n_failed"] == 1
    assert metrics["answer_accuracy"] == 0.5
    assert metrics["mean_entity_reward"] == 0.5
    assert metrics["mean_relation_reward"] == 0.25
    assert metrics["mean_reward"] == pytest.approx((1.5 + 0.25) / 2)
    assert metrics["entity_precision"] == 3 / 5  # matched 3, extra 2
    assert metrics["entity_recall"] == 3 / 4  # matched 3, missing 1
    assert metrics["relation_precision"] == 1 / 3
    assert metrics["relation_recall"] == 1 / 3


def test_summarize_empty_counts_give_null() -> None:
    result = ScoreResult(rewards=[None], components=[None], explanations=None, errors=[None])
    metrics = summarize(result, WEIGHTS)
    assert metrics["n_failed"] == 1
    assert metrics["answer_accuracy"] is None
    assert metrics["entity_precision"] is None


@pytest.mark.slow
def test_evaluate_cli_writes_metrics(
    sft_run_dir: Path, reward_server_url: str, chat_records_path: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from policy_trainer.cli import main

    output_file = tmp_path / "eval" / "metrics.json"
    code = main(["evaluate", "--model_path", str(sft_run_dir / "final"), "--test_file",
                 str(chat_records_path), "--output_file", str(output_file),
                 "--reward_urls", f"[{reward_server_url}]", "--max_new_tokens", "24",
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().err

    metrics = json.loads(output_file.read_text())
    assert metrics["n_items"] == 12
    assert metrics["n_failed"] == 0
    for name in ("answer_accuracy", "mean_entity_reward", "mean_relation_reward"):
        assert 0.0 <= metrics[name] <= 1.0
    counts = metrics["entity_counts"]
    assert counts["missing"] > 0  # a tiny model misses most reference entities
    predictions = output_file.with_name("metrics.predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 12
