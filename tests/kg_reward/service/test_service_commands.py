"""``kg-reward score`` (in-process JSONL scoring) and the argument checks of ``serve``."""

from __future__ import annotations

import json

import pytest

from kg_reward.cli import main
from kg_reward.scoring import RewardScorer
from kg_reward.service.app import load_scorer
from kg_reward.service.settings import Settings
from kg_schema.scoring import ScoreItem, ScoreOptions

REFERENCE = "<think>Small left pleural effusion.</think><answer>yes</answer>"
GOOD = "<think>A small left pleural effusion.</think><answer>yes</answer>"
BAD = "<think>Cardiomegaly.</think><answer>no</answer>"


def write_items(path, records) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


@pytest.fixture
def items_file(tmp_path) -> str:
    records = [
        {"id": "good", "completion": GOOD, "reference": REFERENCE},
        {"id": "bad", "completion": BAD, "reference": REFERENCE},
    ]
    return write_items(tmp_path / "items.jsonl", records)


def read_output(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_command_writes_results_in_order(items_file, tmp_path):
    output = tmp_path / "scores.jsonl"

    assert main(["score", items_file, "--output", str(output)]) == 0
    results = read_output(output)
    assert [result["id"] for result in results] == ["good", "bad"]
    assert results[0]["reward"] > results[1]["reward"]
    assert set(results[0]["components"]) == {"answer", "entity", "relation", "format"}


def test_score_command_matches_scorer(items_file, tmp_path, extractor):
    output = tmp_path / "scores.jsonl"
    main(["score", items_file, "--output", str(output), "--metric", "f1"])
    items = [
        ScoreItem(completion=GOOD, reference=REFERENCE),
        ScoreItem(completion=BAD, reference=REFERENCE),
    ]
    expected = RewardScorer(extractor).score(items, options=ScoreOptions(metric="f1")).rewards
    assert [result["reward"] for result in read_output(output)] == pytest.approx(expected)


def test_score_command_weight_flags(items_file, tmp_path):
    output = tmp_path / "scores.jsonl"
    flags = ["--answer-weight", "0", "--entity-weight", "0", "--relation-weight", "0"]
    main(["score", items_file, "--output", str(output), "--format-weight", "1", *flags])

    assert [result["reward"] for result in read_output(output)] == [1.0, 1.0]


def test_score_command_explain(items_file, tmp_path):
    output = tmp_path / "scores.jsonl"
    main(["score", items_file, "--output", str(output), "--explain", "--preset", "chexpo"])

    explanation = read_output(output)[0]["explanation"]
    assert explanation["id"] == "good"
    assert ["left", "anatomy"] in explanation["entities"]["matched"]


def test_score_command_stdout(items_file, capsys):
    assert main(["score", items_file]) == 0

    assert len(capsys.readouterr().out.splitlines()) == 2


def test_score_command_missing_file_exits_2(tmp_path, capsys):
    assert main(["score", str(tmp_path / "none.jsonl")]) == 2
    assert "input file not found" in capsys.readouterr().err


def test_score_command_bad_json_line_exits_2(tmp_path, capsys):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"completion": GOOD, "reference": REFERENCE}) + "\n{oops\n")

    assert main(["score", str(path)]) == 2
    assert "line 2: invalid JSON" in capsys.readouterr().err


def test_score_command_invalid_item_exits_2(tmp_path, capsys):
    path = write_items(tmp_path / "items.jsonl", [{"completion": GOOD}])

    assert main(["score", path]) == 2
    assert "line 1: reference: Field required" in capsys.readouterr().err


def test_score_command_nan_exits_2(tmp_path, capsys):
    path = tmp_path / "items.jsonl"
    path.write_text('{"completion": NaN, "reference": "x"}\n')

    assert main(["score", str(path)]) == 2
    assert "line 1: invalid JSON" in capsys.readouterr().err


def test_score_command_negative_weight_exits_2(items_file, capsys):
    assert main(["score", items_file, "--entity-weight", "-1"]) == 2
    assert "entity" in capsys.readouterr().err


def test_score_command_bad_empty_score_exits_2(items_file, capsys):
    assert main(["score", items_file, "--empty-score", "2"]) == 2
    assert "empty_score" in capsys.readouterr().err


def test_score_command_text_too_long_exits_2(tmp_path, capsys):
    path = write_items(tmp_path / "items.jsonl", [{"completion": "a" * 100_001, "reference": "x"}])

    assert main(["score", path]) == 2
    assert "line 1: completion has 100001 characters" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--workers", "0"], "--workers must be at least 1"), (["--port", "70000"], "--port must be")],
)
def test_serve_command_bad_flags_exit_2(flags, message, capsys):
    assert main(["serve", *flags]) == 2
    assert message in capsys.readouterr().err


def test_serve_command_bad_setting_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("KG_REWARD_CACHE_SIZE", "-3")

    assert main(["serve"]) == 2
    assert "KG_REWARD_CACHE_SIZE" in capsys.readouterr().err


def test_serve_command_missing_pipeline_dir_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KG_REWARD_PIPELINE_PATH", str(tmp_path / "none"))

    assert main(["serve"]) == 2
    assert "KG_REWARD_PIPELINE_PATH" in capsys.readouterr().err


def test_serve_command_pipeline_without_config_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KG_REWARD_PIPELINE_PATH", str(tmp_path))

    assert main(["serve"]) == 2
    assert "no config.cfg" in capsys.readouterr().err


def test_load_scorer_reads_saved_pipeline(extractor, tmp_path):
    extractor.to_disk(tmp_path / "pipeline")
    scorer = load_scorer(Settings(pipeline_path=tmp_path / "pipeline", cache_size=3))
    items = [ScoreItem(completion=GOOD, reference=REFERENCE)]

    assert scorer.cache.max_size == 3
    assert scorer.score(items).rewards == RewardScorer(extractor).score(items).rewards


def test_serve_command_missing_metrics_dir_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "none"))

    assert main(["serve", "--workers", "2"]) == 2
    assert "PROMETHEUS_MULTIPROC_DIR" in capsys.readouterr().err


def one_error_line(capsys) -> str:
    """Return the single stderr line of a failed command; fail if there is a traceback."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_score_command_lone_surrogate_exits_2(tmp_path, capsys):
    path = tmp_path / "items.jsonl"
    path.write_text('{"completion": "\\ud800 effusion", "reference": "Effusion."}\n')

    assert main(["score", str(path)]) == 2
    line = one_error_line(capsys)
    assert "line 1: completion: contains a lone UTF-16 surrogate" in line


def test_score_command_blank_reference_exits_2(tmp_path, capsys):
    path = write_items(tmp_path / "items.jsonl", [{"completion": GOOD, "reference": " "}])

    assert main(["score", path]) == 2
    assert "line 1: reference: must contain text" in one_error_line(capsys)


def test_score_command_huge_weight_exits_2(items_file, capsys):
    assert main(["score", items_file, "--answer-weight", "1e308"]) == 2
    assert "answer: weight must be at most 1e+06" in one_error_line(capsys)


def test_score_command_not_utf8_exits_2(tmp_path, capsys):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b'{"completion": "\xff\xfe", "reference": "x"}\n')

    assert main(["score", str(path)]) == 2
    assert "is not UTF-8 text" in one_error_line(capsys)


def test_score_command_input_directory_exits_2(tmp_path, capsys):
    assert main(["score", str(tmp_path)]) == 2
    assert "is a directory" in one_error_line(capsys)


def test_score_command_output_directory_exits_2(items_file, tmp_path, capsys):
    assert main(["score", items_file, "--output", str(tmp_path)]) == 2
    assert f"--output {tmp_path} is a directory" in one_error_line(capsys)


def test_score_command_bad_pipeline_dir_exits_2(items_file, tmp_path, capsys):
    assert main(["score", items_file, "--pipeline", str(tmp_path)]) == 2
    assert "is not a saved pipeline directory" in one_error_line(capsys)


@pytest.mark.parametrize("command", ["score", "serve"])
def test_command_options_not_json_exits_2(command, items_file, monkeypatch, capsys):
    monkeypatch.setenv("KG_REWARD_OPTIONS", "not json")
    argv = ["score", items_file] if command == "score" else ["serve"]

    assert main(argv) == 2
    assert "KG_REWARD_OPTIONS is not valid JSON" in one_error_line(capsys)


def test_score_command_bad_cache_size_names_variable(items_file, monkeypatch, capsys):
    monkeypatch.setenv("KG_REWARD_CACHE_SIZE", "-1")

    assert main(["score", items_file]) == 2
    line = one_error_line(capsys)
    assert "KG_REWARD_CACHE_SIZE: Input should be greater than or equal to 0" in line


def test_cli_unknown_log_level_exits_2(items_file, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--log-level", "verbose", "score", items_file])

    assert stopped.value.code == 2
    assert "invalid choice: 'VERBOSE'" in capsys.readouterr().err


def test_load_scorer_sets_sentence_cache_size(extractor, monkeypatch):
    import kg_reward

    monkeypatch.setattr(kg_reward, "load", lambda path=None: extractor)
    scorer = load_scorer(Settings(sentence_cache_size=7))

    assert scorer.extractor._sentences.cache_size == 7


def test_load_scorer_sentence_cache_zero_turns_it_off(extractor, monkeypatch):
    import kg_reward

    monkeypatch.setattr(kg_reward, "load", lambda path=None: extractor)
    scorer = load_scorer(Settings(sentence_cache_size=0))

    assert scorer.extractor._sentences is None
