"""The ``kg-reward extract`` command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kg_reward import cli
from kg_reward.extraction import MAX_TEXT_CHARS, Extractor


@pytest.fixture(autouse=True)
def shared_pipeline(monkeypatch: pytest.MonkeyPatch, extractor: Extractor) -> None:
    """Reuse the session pipeline instead of building one per command."""
    monkeypatch.setattr("kg_reward.load", lambda path=None: extractor)


def run_extract(*args: str) -> int:
    return cli.main(["extract", *args])


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_extract_jsonl_to_graph_lines(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [json.dumps({"id": "r1", "text": "No pneumothorax."}), json.dumps({"text": "Edema."})],
    )
    output = tmp_path / "out.jsonl"

    assert run_extract(str(source), "--output", str(output)) == 0

    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in records] == ["r1", "2"]
    assert records[0]["entities"][0]["label"] == "disorder_notpresent"
    assert set(records[0]) == {"id", "entities", "relations"}


def test_extract_plain_lines_use_line_numbers(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.txt", ["Small effusion.", "", "Cardiomegaly."])
    output = tmp_path / "out.jsonl"

    assert run_extract(str(source), "--output", str(output)) == 0

    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in records] == ["1", "3"]


def test_extract_rexkg_format(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl", [json.dumps({"id": "a", "text": "Small effusion."})]
    )
    output = tmp_path / "out.jsonl"

    assert run_extract(str(source), "--format", "rexkg", "--output", str(output)) == 0

    record = json.loads(output.read_text())
    assert record["entities"] == {"Small": "size", "effusion": "disorder_present"}
    assert record["relations"] == [
        {"source_entity": "Small", "target_entity": "effusion", "type": "modify"}
    ]


def test_extract_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": "s", "text": "Edema."}\n'))

    assert run_extract("-") == 0

    assert json.loads(capsys.readouterr().out)["id"] == "s"


def test_extract_missing_file_exit_2(tmp_path: Path, capsys) -> None:
    assert run_extract(str(tmp_path / "absent.jsonl")) == 2

    assert "input file not found" in capsys.readouterr().err


def test_extract_malformed_json_names_line(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps({"text": "ok"}), '{"text": '])

    assert run_extract(str(source)) == 2

    error = capsys.readouterr().err
    assert "in.jsonl:2: invalid JSON" in error
    assert error.count("\n") == 1


def test_extract_missing_text_field_exit_2(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "x"})])

    assert run_extract(str(source)) == 2

    assert "in.jsonl:1: missing field 'text'" in capsys.readouterr().err


def test_extract_non_string_text_exit_2(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps({"text": 3})])

    assert run_extract(str(source)) == 2

    assert "must be a string" in capsys.readouterr().err


def test_extract_text_over_limit_exit_2(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.txt", ["ok", "a" * (MAX_TEXT_CHARS + 1)])

    assert run_extract(str(source)) == 2

    assert "in.txt:2: text has 100001 characters" in capsys.readouterr().err


def test_extract_not_utf8_exit_2(tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"\xff\xfe\x00bad")

    assert run_extract(str(source)) == 2

    assert "not UTF-8" in capsys.readouterr().err


def test_extract_unknown_format_exit_2(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.txt", ["Edema."])

    assert run_extract(str(source), "--format", "xml") == 2

    assert "unknown --format 'xml'" in capsys.readouterr().err


def test_extract_bad_batch_size_exit_2(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.txt", ["Edema."])

    assert run_extract(str(source), "--batch-size", "0") == 2

    assert "--batch-size must be >= 1" in capsys.readouterr().err


def test_extract_nothing_written_on_bad_line(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps({"text": "Edema."}), "{bad"])
    output = tmp_path / "out.jsonl"

    assert run_extract(str(source), "--output", str(output)) == 2

    assert not output.exists()


def test_extract_lone_surrogate_names_line(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "in.jsonl", ['{"text": "ok"}', '{"text": "\\ud800 effusion"}'])

    assert run_extract(str(path)) == 2
    assert ":2: text contains a lone UTF-16 surrogate" in capsys.readouterr().err


def test_extract_input_directory_exit_2(tmp_path: Path, capsys) -> None:
    assert run_extract(str(tmp_path)) == 2

    assert "is a directory" in capsys.readouterr().err


def test_extract_output_directory_exit_2(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "in.jsonl", ['{"text": "ok"}'])

    assert run_extract(str(path), "--output", str(tmp_path)) == 2
    assert "is a directory" in capsys.readouterr().err


def test_extract_rexkg_warns_on_collapsed_texts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "No effusion on the right. Small left effusion."
    source = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "d1", "text": text})])
    output = tmp_path / "out.jsonl"

    with caplog.at_level("WARNING", logger="kg_reward.commands.extract"):
        assert run_extract(str(source), "--format", "rexkg", "--output", str(output)) == 0

    assert json.loads(output.read_text())["entities"]["effusion"] == "disorder_notpresent"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "document d1: 1 entity text(s)" in warnings[0].getMessage()
    assert "'effusion'" in warnings[0].getMessage()


def test_extract_rexkg_no_warning_for_same_label(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "No effusion. No effusion on the left."
    source = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "d2", "text": text})])

    with caplog.at_level("WARNING", logger="kg_reward.commands.extract"):
        assert run_extract(str(source), "--format", "rexkg", "--output", str(tmp_path / "o")) == 0

    assert not [r for r in caplog.records if r.levelname == "WARNING"]
