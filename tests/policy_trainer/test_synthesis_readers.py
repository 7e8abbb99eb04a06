"""Readers of report files and sentence splitting; no extraction pipeline needed."""

from __future__ import annotations

import argparse
import io
import itertools
import tarfile
from pathlib import Path

import pytest

from policy_trainer.commands import synthesize as synthesize_command
from policy_trainer.errors import ConfigError, DataError
from policy_trainer.synthesis.reports import (
    Report,
    find_nlmcxr_archive,
    parse_openi_xml,
    read_csv_reports,
    read_mimic_reports,
    read_nlmcxr_reports,
    read_reports,
)
from policy_trainer.synthesis.sentences import split_sentences

SAMPLE_CSV = Path(__file__).parent / "data" / "iu_reports_sample.csv"


def test_csv_reader_reads_sample() -> None:
    reports = list(read_csv_reports(SAMPLE_CSV))

    assert len(reports) == 40
    assert reports[0].report_id == "CXR1"
    assert reports[0].findings.startswith("The cardiac silhouette")
    assert reports[0].images == ("CXR1_1_IM-0001-3001",)


def test_csv_reader_rejects_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_text("uid,text\n1,No effusion.\n", encoding="utf-8")

    with pytest.raises(DataError, match="findings, impression"):
        list(read_csv_reports(path))


def test_csv_reader_rejects_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(b"uid,findings,impression\n1,\xff\xfe effusion,none\n")

    with pytest.raises(DataError, match="not valid UTF-8"):
        list(read_csv_reports(path))


def test_csv_reader_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read report CSV"):
        list(read_csv_reports(tmp_path / "absent.csv"))


def test_nlmcxr_archive_found_in_installed_package() -> None:
    archive = find_nlmcxr_archive()

    assert archive.name == "NLMCXR_reports.tgz"
    assert "torchxrayvision" in archive.parts


def test_nlmcxr_reader_reads_real_reports() -> None:
    reports = list(itertools.islice(read_nlmcxr_reports(find_nlmcxr_archive()), 5))

    assert [r.report_id for r in reports] == ["CXR1", "CXR10", "CXR100", "CXR1000", "CXR1001"]
    assert reports[0].findings.startswith("The cardiac silhouette and mediastinum size")
    assert reports[0].impression == "Normal chest x-XXXX."
    assert reports[0].images == ("CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001")
    assert not reports[0].has_prior


def test_nlmcxr_reader_rejects_non_archive(tmp_path: Path) -> None:
    path = tmp_path / "reports.tgz"
    path.write_bytes(b"not a tar file")

    with pytest.raises(DataError, match="cannot open report archive"):
        list(read_nlmcxr_reports(path))


def test_nlmcxr_reader_rejects_archive_without_xml(tmp_path: Path) -> None:
    path = tmp_path / "reports.tgz"
    with tarfile.open(path, "w:gz") as archive:
        data = b"hello"
        member = tarfile.TarInfo("notes.txt")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))

    with pytest.raises(DataError, match="no .xml report"):
        list(read_nlmcxr_reports(path))


def test_openi_xml_without_uid_raises() -> None:
    with pytest.raises(DataError, match="uId"):
        parse_openi_xml(b"<eCitation><Abstract/></eCitation>")


def test_openi_xml_invalid_raises() -> None:
    with pytest.raises(DataError, match="not valid XML"):
        parse_openi_xml(b"<eCitation>")


def test_mimic_reader_reads_sections_and_images(tmp_path: Path) -> None:
    study = tmp_path / "p10" / "p10000032"
    study.mkdir(parents=True)
    (study / "s50414267.txt").write_text(
        "                                 FINAL REPORT\n"
        " EXAMINATION:  CHEST (PA AND LAT)\n\n"
        " COMPARISON:  Chest radiograph from ___.\n\n"
        " FINDINGS: \n \n There is a small left pleural effusion,\n increased since the prior.\n"
        " \n IMPRESSION: \n \n Small left effusion, worse.\n",
        encoding="utf-8",
    )
    (study / "s50414267").mkdir()
    (study / "s50414267" / "02aa804e.jpg").write_bytes(b"")

    [report] = list(read_mimic_reports(tmp_path))

    assert report.report_id == "s50414267"
    assert report.findings == "There is a small left pleural effusion, increased since the prior."
    assert report.impression == "Small left effusion, worse."
    assert report.has_prior
    assert report.images == (str(study / "s50414267" / "02aa804e.jpg"),)


def test_mimic_reader_rejects_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no s<study>.txt"):
        list(read_mimic_reports(tmp_path))


def test_read_reports_needs_path_for_csv() -> None:
    with pytest.raises(DataError, match="input_path"):
        read_reports("csv", None)


def test_report_without_prior_study() -> None:
    for comparison in ("None.", "None available", "", "N/A"):
        assert not Report("1", "x", "", comparison).has_prior
    assert Report("1", "x", "", "Chest radiograph 2010").has_prior


def test_split_sentences_strips_list_markers() -> None:
    text = "1. Bullous emphysema. 2. Scarring in the left apex.\nNo effusion."

    sentences = split_sentences(text)

    assert [s.text for s in sentences] == [
        "Bullous emphysema.", "Scarring in the left apex.", "No effusion."
    ]
    assert all(text[s.start:s.end] == s.text for s in sentences)


def test_synthesize_command_rejects_unknown_source() -> None:
    parser = argparse.ArgumentParser()
    synthesize_command.register(parser.add_subparsers())
    args = parser.parse_args(["synthesize", "--source", "pdf"])

    with pytest.raises(ConfigError, match="source='pdf'"):
        args.func(args)


def test_synthesize_command_rejects_bad_split_ratios() -> None:
    parser = argparse.ArgumentParser()
    synthesize_command.register(parser.add_subparsers())
    args = parser.parse_args(["synthesize", "--split_ratios", "[0.5, 0.1, 0.1]"])

    with pytest.raises(ConfigError, match="sum to 1"):
        args.func(args)


def test_synthesize_cli_exits_2_on_missing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from policy_trainer.cli import main

    code = main(["synthesize", "--source", "csv", "--input_path", str(tmp_path / "absent.csv"),
                 "--output_dir", str(tmp_path / "out")])

    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith("policy-trainer synthesize: error: cannot read report CSV")
    assert "\n" not in error
