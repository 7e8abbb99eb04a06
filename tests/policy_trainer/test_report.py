"""policy_trainer.report: metric tables, per-step matching and the plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from kg_schema.scoring import Explanation, SetComparison
from policy_trainer import report


class RecordingScorer:
    """Stands in for RewardClient.score: returns fixed explanations, records the requests."""

    def __init__(self, explanations: list[Explanation | None]):
        self.explanations = explanations
        self.requests: list[tuple[list[dict], object]] = []

    def score(self, items, *, options=None):  # type: ignore[no-untyped-def]
        items = list(items)
        self.requests.append((items, options))
        taken, self.explanations = (self.explanations[:len(items)],
                                    self.explanations[len(items):])

        class Result:
            explanations = taken

        return Result()


def _explanation(matched: int, missing: int, extra: int) -> Explanation:
    def items(n: int) -> list[list[str]]:
        return [[f"term{i}", "anatomy"] for i in range(n)]

    comparison = SetComparison(matched=items(matched), missing=items(missing),
                               extra=items(extra))
    return Explanation(entities=comparison, relations=SetComparison())


def test_match_counts_precision_and_recall() -> None:
    counts = report.MatchCounts()
    counts.add(matched=3, missing=1, extra=2)
    assert counts.precision == pytest.approx(3 / 5)
    assert counts.recall == pytest.approx(3 / 4)


def test_match_counts_empty_is_none() -> None:
    assert report.MatchCounts().precision is None
    assert report.MatchCounts().recall is None


def test_flatten_metrics_keeps_null_and_ints() -> None:
    flat = report.flatten_metrics({"answer_accuracy": 0.5, "entity_recall": None,
                                   "n_items": 12, "entity_counts": {"matched": 3},
                                   "model_path": "runs/x"})
    assert flat == {"answer_accuracy": 0.5, "entity_recall": None, "n_items": 12,
                    "entity_counts.matched": 3}
    assert isinstance(flat["n_items"], int)


def test_results_table_shows_change() -> None:
    table = report.results_table({"answer_accuracy": 0.25, "n_items": 8},
                                 {"answer_accuracy": 0.5, "n_items": 8})
    lines = table.splitlines()
    assert lines[2] == "| answer_accuracy | 0.2500 | 0.5000 | +0.2500 |"
    assert lines[3] == "| n_items | 8 | 8 | +0 |"


def test_results_table_missing_value_is_na() -> None:
    table = report.results_table({"entity_recall": 0.1, "relation_precision": None}, {})
    assert "| entity_recall | 0.1000 | n/a | n/a |" in table
    assert "| relation_precision | n/a | n/a | n/a |" in table


def test_step_reward_means_skip_failed_rewards() -> None:
    rows = [{"step": 1, "reward": 1.0, "answer": 1.0}, {"step": 1, "reward": None,
                                                        "answer": None},
            {"step": 2, "reward": 0.5, "answer": 0.0}]
    means = report.step_reward_means(rows)
    assert means["reward"] == [(1, 1.0), (2, 0.5)]
    assert means["answer"] == [(1, 1.0), (2, 0.0)]


def test_completion_references_join_by_id_then_question() -> None:
    records = [{"id": "a", "question": "Is there an effusion?", "rationale": "Effusion.",
                "answer": "yes"},
               {"id": "b", "question": "Is there edema?", "rationale": "No edema.",
                "answer": "no"}]
    rows = [{"id": "a", "prompt": "?"}, {"id": None, "prompt": "<|user|>Is there edema?"},
            {"id": "zzz", "prompt": "unrelated"}]
    assert report.completion_references(rows, records) == [
        ("Effusion.", "yes"), ("No edema.", "no"), None]


def test_match_counts_per_step_sums_by_step() -> None:
    rows = [{"step": 1, "completion": "c1"}, {"step": 1, "completion": "c2"},
            {"step": 2, "completion": "c3"}]
    scorer = RecordingScorer([_explanation(2, 1, 0), _explanation(1, 0, 1),
                              _explanation(0, 2, 2)])
    steps = report.match_counts_per_step(rows, [("r", "yes")] * 3, scorer,
                                         reward_options={"match": "surface"})
    assert [step.step for step in steps] == [1, 2]
    assert steps[0].entities.precision == pytest.approx(3 / 4)
    assert steps[0].entities.recall == pytest.approx(3 / 4)
    assert steps[1].entities.precision == 0.0
    options = scorer.requests[0][1]
    assert options.explain is True
    assert options.match == "surface"


def test_match_counts_per_step_skips_rows_without_reference() -> None:
    scorer = RecordingScorer([_explanation(1, 0, 0)])
    steps = report.match_counts_per_step(
        [{"step": 1, "completion": "a"}, {"step": 1, "completion": "b"}],
        [None, ("r", None)], scorer)
    assert len(scorer.requests[0][0]) == 1
    assert steps[0].scored == 1


def test_write_report_writes_table_and_plots(tmp_path: Path) -> None:
    matching = report.StepMatching(step=1)
    matching.entities.add(1, 1, 1)
    inputs = report.ReportInputs(
        run_dir=tmp_path, scale="tiny", reward_url="http://127.0.0.1:1",
        stage_seconds={"sft": 3.0, "grpo": 4.0},
        sft_metrics={"answer_accuracy": 0.25, "relation_precision": None},
        grpo_metrics={"answer_accuracy": 0.5, "relation_precision": 0.5},
        completions=[{"step": 1, "reward": 0.5, "answer": 0.0, "entity": 1.0,
                      "relation": 0.0}],
        step_matching=[matching],
        settings={"grpo": {"max_steps": 3, "num_generations": 2}},
    )
    path = report.write_report(inputs)
    text = path.read_text()
    assert "| grpo | max_steps=3, num_generations=2 |" in text
    assert "| answer_accuracy | 0.2500 | 0.5000 | +0.2500 |" in text
    assert "| total | 7 |" in text
    for name in ("sft_vs_grpo.png", "rewards_per_step.png", "precision_recall_per_step.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
