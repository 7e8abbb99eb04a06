"""Synthesis on real Indiana University reports with the real kg_reward pipeline.

One module-scoped run over the 40 shipped reports feeds most tests. Each test checks one
property of that output against graphs that the test extracts itself.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_trainer.commands import synthesize as synthesize_command
from policy_trainer.errors import DataError
from policy_trainer.synthesis.config import SynthesizeConfig
from policy_trainer.synthesis.dataset import SPLITS
from policy_trainer.synthesis.pipeline import synthesize
from policy_trainer.synthesis.questions import load_change_cues
from policy_trainer.synthesis.reports import read_csv_reports
from policy_trainer.synthesis.sentences import split_sentences

SAMPLE_CSV = Path(__file__).parent / "data" / "iu_reports_sample.csv"


@pytest.fixture(scope="module")
def extractor() -> Any:
    import kg_reward

    return kg_reward.load()


@pytest.fixture(scope="module")
def reports() -> dict[str, Any]:
    return {report.report_id: report for report in read_csv_reports(SAMPLE_CSV)}


def run(output_dir: Path, extractor: Any, **overrides: Any) -> dict[str, Any]:
    config = SynthesizeConfig(source="csv", input_path=SAMPLE_CSV, output_dir=output_dir,
                              **overrides)
    return synthesize(config, extractor=extractor)


def read_split(output_dir: Path, split: str) -> list[dict[str, Any]]:
    lines = (output_dir / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory, extractor: Any) -> Path:
    output_dir = tmp_path_factory.mktemp("synthesis")
    run(output_dir, extractor)
    return output_dir


@pytest.fixture(scope="module")
def items(output: Path) -> list[dict[str, Any]]:
    return [item for split in SPLITS for item in read_split(output, split)]


def test_synthesize_writes_all_kinds(items: list[dict[str, Any]]) -> None:
    kinds = Counter(item["kind"] for item in items)

    assert set(kinds) == {"basic", "region", "comparison"}
    assert kinds["basic"] >= 20


def test_rationale_sentences_come_from_report(
    items: list[dict[str, Any]], reports: dict[str, Any]
) -> None:
    for item in items:
        sentences = [s.text for s in split_sentences(reports[item["report_id"]].text)]
        quoted = [s.text for s in split_sentences(item["rationale"])]
        assert quoted, item["id"]
        assert all(sentence in sentences for sentence in quoted), item["id"]


def test_rationale_entities_subset_of_report_graph(
    items: list[dict[str, Any]], reports: dict[str, Any], extractor: Any
) -> None:
    report_graphs = {rid: extractor.extract_one(r.text) for rid, r in reports.items()}
    rationale_graphs = extractor.extract([item["rationale"] for item in items])

    for item, graph in zip(items, rationale_graphs, strict=True):
        extra = graph.entity_keys() - report_graphs[item["report_id"]].entity_keys()
        assert not extra, (item["id"], extra)


def test_basic_answers_agree_with_report_graph(
    items: list[dict[str, Any]], reports: dict[str, Any], extractor: Any
) -> None:
    for item in (i for i in items if i["kind"] == "basic"):
        graph = extractor.extract_one(reports[item["report_id"]].text)
        mentions = [e for e in graph.entities if e.canonical == item["finding"]]
        asserted = {e.assertion for e in mentions}
        if item["answer"] == "yes":
            assert "present" in asserted, item["id"]
        else:
            assert asserted == {"absent"}, item["id"]


def test_region_answers_agree_with_report_graph(
    items: list[dict[str, Any]], reports: dict[str, Any], extractor: Any
) -> None:
    region_items = [i for i in items if i["kind"] == "region"]
    assert region_items
    for item in region_items:
        graph = extractor.extract_one(reports[item["report_id"]].text)
        located = {
            (graph.entities[r.head].assertion, graph.entities[r.tail].canonical)
            for r in graph.relations
            if r.type == "located_at" and graph.entities[r.head].canonical == item["finding"]
        }
        if item["answer"] == "yes":
            assert ("present", item["region"]) in located, item["id"]
        elif item["answer"] == "no":
            assert ("present", item["region"]) not in located, item["id"]
        else:
            regions = item["answer"].split(", ")
            assert {("present", region) for region in regions} <= located, item["id"]


def test_comparison_answer_matches_cue_in_rationale(items: list[dict[str, Any]]) -> None:
    cues = load_change_cues()
    comparison = [i for i in items if i["kind"] == "comparison"]
    assert comparison
    for item in comparison:
        stated = {c.direction for c in cues if c.pattern.search(item["rationale"])}
        assert item["answer"] in stated, item["id"]


def test_items_have_no_duplicates(items: list[dict[str, Any]]) -> None:
    ids = [item["id"] for item in items]
    questions = [(item["report_id"], item["question"].lower()) for item in items]

    assert len(set(ids)) == len(ids)
    assert len(set(questions)) == len(questions)


def test_splits_share_no_report(output: Path) -> None:
    reports_per_split = {
        split: {item["report_id"] for item in read_split(output, split)} for split in SPLITS
    }

    assert not reports_per_split["train"] & reports_per_split["dev"]
    assert not reports_per_split["train"] & reports_per_split["test"]
    assert not reports_per_split["dev"] & reports_per_split["test"]


def test_yes_no_balanced_per_kind(items: list[dict[str, Any]], output: Path) -> None:
    summary = json.loads((output / "summary.json").read_text())

    for kind in ("basic", "region"):
        answers = Counter(i["answer"] for i in items if i["kind"] == kind)
        assert answers["yes"] == answers["no"], kind
    assert summary["total"]["yes_share"] == 0.5


def test_summary_counts_match_files(items: list[dict[str, Any]], output: Path) -> None:
    summary = json.loads((output / "summary.json").read_text())

    assert summary["total"]["items"] == len(items)
    assert summary["total"]["per_kind"] == dict(sorted(Counter(i["kind"] for i in items).items()))
    for split in SPLITS:
        assert summary["splits"][split]["items"] == len(read_split(output, split))


def test_records_follow_chat_schema(items: list[dict[str, Any]]) -> None:
    from kg_reward.tags import parse_completion

    for item in items:
        assistant = item["messages"][-1]
        parsed = parse_completion(assistant["content"])
        assert item["messages"][-2] == {"role": "user", "content": item["question"]}
        assert parsed.well_formed, item["id"]
        assert parsed.think == item["rationale"] == item["reference"]
        assert parsed.answer == item["answer"] == item["reference_answer"]
        assert item["image"].startswith(f"{item['report_id']}_")


def test_same_seed_gives_identical_files(
    tmp_path: Path, output: Path, extractor: Any
) -> None:
    run(tmp_path, extractor)

    for name in (*(f"{split}.jsonl" for split in SPLITS),):
        assert (tmp_path / name).read_bytes() == (output / name).read_bytes(), name


def test_other_seed_changes_split(tmp_path: Path, output: Path, extractor: Any) -> None:
    run(tmp_path, extractor, seed=1)

    assert (tmp_path / "train.jsonl").read_bytes() != (output / "train.jsonl").read_bytes()


def test_uncertain_findings_give_no_question(tmp_path: Path, extractor: Any) -> None:
    csv_path = tmp_path / "reports.csv"
    csv_path.write_text(
        "uid,findings,impression\n"
        "u1,Possible small left pleural effusion.,No pneumothorax.\n", encoding="utf-8"
    )
    config = SynthesizeConfig(source="csv", input_path=csv_path, output_dir=tmp_path / "out",
                              balance_answers=False, split_ratios=[1.0, 0.0, 0.0])

    summary = synthesize(config, extractor=extractor)

    questions = [item["question"] for item in read_split(tmp_path / "out", "train")]
    assert summary["skipped_uncertain_mentions"] >= 1
    assert not any("effusion" in question for question in questions)
    assert any("pneumothorax" in question for question in questions)


def test_synthesize_reads_real_nlmcxr_archive(tmp_path: Path, extractor: Any) -> None:
    config = SynthesizeConfig(source="nlmcxr", output_dir=tmp_path, max_reports=30)

    summary = synthesize(config, extractor=extractor)

    assert summary["reports_read"] == 30
    assert summary["total"]["items"] > 0
    assert re.fullmatch(r"CXR\d+", read_split(tmp_path, "train")[0]["report_id"])


def test_synthesize_command_writes_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "synthesize.yaml"
    config_path.write_text(yaml.safe_dump({
        "source": "csv", "input_path": str(SAMPLE_CSV), "output_dir": str(tmp_path / "out"),
    }), encoding="utf-8")
    parser = argparse.ArgumentParser()
    synthesize_command.register(parser.add_subparsers())
    args = parser.parse_args(["synthesize", "--config", str(config_path), "--seed", "3"])

    assert args.func(args) == 0

    printed = json.loads(capsys.readouterr().out)
    recorded = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert printed["items"] > 0
    assert recorded["seed"] == 3
    assert (tmp_path / "out" / "summary.json").is_file()


def test_synthesize_rejects_missing_input(tmp_path: Path, extractor: Any) -> None:
    config = SynthesizeConfig(source="csv", input_path=tmp_path / "absent.csv",
                              output_dir=tmp_path)

    with pytest.raises(DataError, match="absent.csv"):
        synthesize(config, extractor=extractor)


def test_synthesize_reads_mimic_folder(tmp_path: Path, extractor: Any) -> None:
    study = tmp_path / "reports" / "p10" / "p10000032"
    study.mkdir(parents=True)
    (study / "s50000001.txt").write_text(
        " COMPARISON:  Chest radiograph from ___.\n"
        " FINDINGS:  Small left pleural effusion has increased since the prior study.\n"
        " IMPRESSION:  No pneumothorax.\n", encoding="utf-8",
    )
    (study / "s50000001").mkdir()
    (study / "s50000001" / "view1.jpg").write_bytes(b"")
    config = SynthesizeConfig(source="mimic", input_path=tmp_path / "reports",
                              output_dir=tmp_path / "out", balance_answers=False,
                              split_ratios=[1.0, 0.0, 0.0])

    synthesize(config, extractor=extractor)

    items = read_split(tmp_path / "out", "train")
    answers = {item["question"]: item["answer"] for item in items}
    assert answers["Compared with the prior study, is the small pleural effusion better, "
                   "worse or unchanged?"] == "worse"
    assert "no" in answers.values()
    assert all(item["image"].endswith("s50000001/view1.jpg") for item in items)
