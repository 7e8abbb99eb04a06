"""Tests of ``kg-reward label`` on the Indiana sample in tests/kg_reward/data."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import pytest

import kg_reward
from kg_reward.cli import main
from kg_reward.labeler import CHESTXRAY14_COLUMNS, CHEXPERT_COLUMNS

DATA = Path(__file__).parent / "data"
REPORTS = DATA / "iu_reports_sample.csv"
LABELS = DATA / "iu_labels_sample.csv"

# A few points below the micro-F1 measured on the 50 sample reports when it was set (0.844).
# The sample has 33 positive labels, so one wrong label moves the score by about 0.015.
SAMPLE_MICRO_F1_FLOOR = 0.80


@pytest.fixture
def use_shared_pipeline(monkeypatch: pytest.MonkeyPatch, extractor) -> None:
    """Make the command reuse the session's pipeline instead of loading its own."""
    monkeypatch.setattr(kg_reward, "load", lambda path=None: extractor)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or ()), list(reader)


@pytest.fixture(scope="module")
def chestxray14_run(tmp_path_factory: pytest.TempPathFactory, extractor) -> tuple[Path, str]:
    """Run the command once for the module and return the output path and printed text."""
    output = tmp_path_factory.mktemp("label") / "labels.csv"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(kg_reward, "load", lambda path=None: extractor)
        status = main(
            ["label", "--reports", str(REPORTS), "--schema", "chestxray14",
             "--output", str(output), "--gold", str(LABELS)]
        )  # fmt: skip
    assert status == 0
    return output, printed.getvalue()


def test_label_chestxray14_layout_matches_gold(chestxray14_run) -> None:
    output, _ = chestxray14_run
    header, rows = read_rows(output)
    gold_header, gold_rows = read_rows(LABELS)

    assert header == list(CHESTXRAY14_COLUMNS) == gold_header
    assert output.read_bytes().split(b"\r\n")[0] == LABELS.read_bytes().split(b"\r\n")[0]
    assert [row["filename"] for row in rows] == [row["filename"] for row in gold_rows]
    assert {row[name] for row in rows for name in header[1:]} <= {"0", "1"}


def test_label_chestxray14_micro_f1_above_floor(chestxray14_run) -> None:
    _, printed = chestxray14_run
    micro = next(line for line in printed.splitlines() if line.startswith("micro"))

    assert float(micro.split()[3]) >= SAMPLE_MICRO_F1_FLOOR


def test_label_chestxray14_prints_every_finding(chestxray14_run) -> None:
    _, printed = chestxray14_run

    for name in CHESTXRAY14_COLUMNS[1:-1]:
        assert any(line.startswith(name) for line in printed.splitlines()), name


def test_label_chexpert_values(tmp_path: Path, use_shared_pipeline: None) -> None:
    output = tmp_path / "chexpert.csv"

    status = main(
        ["label", "--reports", str(REPORTS), "--schema", "chexpert", "--output", str(output)]
    )

    header, rows = read_rows(output)
    assert status == 0
    assert header == list(CHEXPERT_COLUMNS)
    assert len(rows) == 50
    assert {row[name] for row in rows for name in header[1:]} <= {"1", "0", "-1", ""}
    assert any(row["No Finding"] == "1" for row in rows)


def test_label_missing_reports_file_exits_2(tmp_path: Path, capsys) -> None:
    status = main(
        ["label", "--reports", str(tmp_path / "none.csv"), "--schema", "chexpert",
         "--output", str(tmp_path / "out.csv")]
    )  # fmt: skip

    assert status == 2
    assert "reports file not found" in capsys.readouterr().err


def test_label_missing_columns_exits_2(tmp_path: Path, capsys) -> None:
    reports = tmp_path / "reports.csv"
    reports.write_text("uid,findings\n1,Clear lungs.\n")

    status = main(
        ["label", "--reports", str(reports), "--schema", "chexpert",
         "--output", str(tmp_path / "out.csv")]
    )  # fmt: skip

    assert status == 2
    assert "missing column(s) impression" in capsys.readouterr().err


def test_label_unknown_schema_exits_2(tmp_path: Path, capsys) -> None:
    status = main(
        ["label", "--reports", str(REPORTS), "--schema", "mimic", "--output",
         str(tmp_path / "out.csv")]
    )  # fmt: skip

    assert status == 2
    assert "unknown --schema 'mimic'" in capsys.readouterr().err


def test_label_missing_gold_file_exits_2(tmp_path: Path, capsys) -> None:
    status = main(
        ["label", "--reports", str(REPORTS), "--schema", "chestxray14",
         "--output", str(tmp_path / "out.csv"), "--gold", str(tmp_path / "gold.csv")]
    )  # fmt: skip

    assert status == 2
    assert "gold file not found" in capsys.readouterr().err


def test_label_missing_pipeline_dir_exits_2(tmp_path: Path, capsys) -> None:
    status = main(
        ["label", "--reports", str(REPORTS), "--schema", "chexpert",
         "--output", str(tmp_path / "out.csv"), "--pipeline", str(tmp_path / "none")]
    )  # fmt: skip

    assert status == 2
    assert "--pipeline directory not found" in capsys.readouterr().err


def test_label_gold_without_shared_ids_exits_2(
    tmp_path: Path, capsys, use_shared_pipeline: None
) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text(",".join(CHESTXRAY14_COLUMNS) + "\nCXR999999" + ",0" * 15 + "\n")

    status = main(
        ["label", "--reports", str(REPORTS), "--schema", "chestxray14",
         "--output", str(tmp_path / "out.csv"), "--gold", str(gold)]
    )  # fmt: skip

    assert status == 2
    assert "no report id of --reports appears in --gold" in capsys.readouterr().err


def test_label_reports_directory_exits_2(tmp_path: Path, capsys) -> None:
    status = main(
        ["label", "--reports", str(tmp_path), "--schema", "chexpert",
         "--output", str(tmp_path / "out.csv")]
    )  # fmt: skip

    assert status == 2
    assert "is a directory" in capsys.readouterr().err


def test_label_output_directory_exits_2(tmp_path: Path, capsys) -> None:
    status = main(
        ["label", "--reports", str(REPORTS), "--schema", "chexpert", "--output", str(tmp_path)]
    )

    assert status == 2
    assert f"--output {tmp_path} is a directory" in capsys.readouterr().err


def test_label_bad_pipeline_dir_exits_2(tmp_path: Path, capsys) -> None:
    status = main(
        ["label", "--reports", str(REPORTS), "--schema", "chexpert",
         "--output", str(tmp_path / "out.csv"), "--pipeline", str(tmp_path)]
    )  # fmt: skip

    assert status == 2
    assert "is not a saved pipeline directory" in capsys.readouterr().err


def write_reports(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "findings", "impression"])
        writer.writerows(rows)
    return path


EMPTY_REPORTS = [
    ("1", "", ""),
    ("2", "   ", "\n"),
    ("3", "XXXX XXXX.", "XXXX"),
    ("4", "The lungs are clear.", "No acute disease."),
]


@pytest.mark.parametrize(
    ("schema", "column", "expected"),
    [("chestxray14", "normal", "0"), ("chexpert", "No Finding", "")],
)
def test_label_reports_without_text_not_normal(
    tmp_path: Path, use_shared_pipeline: None, schema: str, column: str, expected: str
) -> None:
    reports = write_reports(tmp_path / "reports.csv", EMPTY_REPORTS)
    output = tmp_path / "labels.csv"

    status = main(["label", "--reports", str(reports), "--schema", schema, "--output", str(output)])

    _, rows = read_rows(output)
    assert status == 0
    assert [row[column] for row in rows[:3]] == [expected] * 3
    assert rows[3][column] == "1"


def test_label_reports_without_text_warn_once(
    tmp_path: Path, use_shared_pipeline: None, caplog: pytest.LogCaptureFixture
) -> None:
    reports = write_reports(tmp_path / "reports.csv", EMPTY_REPORTS)

    with caplog.at_level("WARNING", logger="kg_reward.commands.label"):
        main(["label", "--reports", str(reports), "--schema", "chestxray14",
              "--output", str(tmp_path / "labels.csv")])  # fmt: skip

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith("3 of 4 reports have no text")
    assert "'1', '2', '3'" in warnings[0]


def test_label_duplicate_uids_warn_and_keep_rows(
    tmp_path: Path, use_shared_pipeline: None, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [("7", "No effusion.", ""), ("7", "Cardiomegaly.", ""), ("8", "Edema.", "")]
    reports = write_reports(tmp_path / "reports.csv", rows)
    output = tmp_path / "labels.csv"

    with caplog.at_level("WARNING", logger="kg_reward.commands.label"):
        status = main(["label", "--reports", str(reports), "--schema", "chestxray14",
                       "--output", str(output)])  # fmt: skip

    _, written = read_rows(output)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert status == 0
    assert [row["filename"] for row in written] == ["CXR7", "CXR7", "CXR8"]
    assert len(warnings) == 1
    assert "1 uid(s) occur on more than one row" in warnings[0]
    assert "'7'" in warnings[0]
