"""Unit tests of kg_reward.labeler on hand-built graphs (no spaCy pipeline)."""

from __future__ import annotations

import pytest

from kg_reward.labeler import (
    CHESTXRAY14_COLUMNS,
    CHEXPERT_OBSERVATIONS,
    FindingMap,
    FindingRule,
    NormalRule,
    has_report_text,
    label_chestxray14,
    label_chexpert,
    read_labels,
    report_text,
    unlabelled_row,
    write_labels,
)
from kg_schema import Entity, KnowledgeGraph, Relation


def entity(canonical: str, label: str, assertion: str = "present") -> Entity:
    return Entity(
        text=canonical,
        start=0,
        end=len(canonical),
        label=label,
        canonical=canonical,
        assertion=assertion,
    )


def graph(*entities: Entity, relations: tuple[Relation, ...] = ()) -> KnowledgeGraph:
    return KnowledgeGraph(entities=list(entities), relations=list(relations))


NO_NAMES = NormalRule()


@pytest.fixture(scope="module")
def finding_map() -> FindingMap:
    return FindingMap.from_csv()


def test_chestxray14_definite_finding_is_positive(finding_map: FindingMap) -> None:
    labels = label_chestxray14(
        graph(entity("pleural effusion", "disorder_present")), finding_map, NO_NAMES
    )

    assert labels["Effusion"] == 1
    assert labels["normal"] == 0


def test_chestxray14_hedged_finding_is_not_positive(finding_map: FindingMap) -> None:
    labels = label_chestxray14(
        graph(entity("pneumonia", "disorder_present", "uncertain")), finding_map, NO_NAMES
    )

    assert labels["Pneumonia"] == 0


def test_chestxray14_negated_only_report_is_normal(finding_map: FindingMap) -> None:
    labels = label_chestxray14(
        graph(entity("pneumothorax", "disorder_notpresent", "absent")), finding_map, NO_NAMES
    )

    assert labels["Pneumothorax"] == 0
    assert labels["normal"] == 1


def test_chestxray14_other_finding_clears_normal(finding_map: FindingMap) -> None:
    labels = label_chestxray14(
        graph(entity("scoliosis", "disorder_present")), finding_map, NO_NAMES
    )

    assert sum(labels[name] for name in CHESTXRAY14_COLUMNS[1:-1]) == 0
    assert labels["normal"] == 0


def test_chestxray14_anatomy_rule_needs_linked_anatomy(finding_map: FindingMap) -> None:
    enlarged, heart = entity("enlarged", "size"), entity("heart", "anatomy")
    linked = graph(enlarged, heart, relations=(Relation(head=0, tail=1, type="modify"),))
    unlinked = graph(enlarged, heart)

    assert label_chestxray14(linked, finding_map, NO_NAMES)["Cardiomegaly"] == 1
    assert label_chestxray14(unlinked, finding_map, NO_NAMES)["Cardiomegaly"] == 0


def test_chestxray14_abnormal_descriptor_clears_normal(finding_map: FindingMap) -> None:
    tortuous, aorta = entity("tortuous", "concept"), entity("aorta", "anatomy")
    report = graph(tortuous, aorta, relations=(Relation(head=0, tail=1, type="modify"),))

    assert label_chestxray14(report, finding_map, NO_NAMES)["normal"] == 1
    assert label_chestxray14(report, finding_map, NormalRule.from_files())["normal"] == 0


def test_chestxray14_borderline_enlargement_is_positive(finding_map: FindingMap) -> None:
    enlarged = entity("enlargement", "disorder_present", "uncertain")
    heart, borderline = entity("heart", "anatomy"), entity("borderline", "concept")
    relations = (
        Relation(head=0, tail=1, type="located_at"),
        Relation(head=2, tail=0, type="modify"),
    )

    hedged_report = graph(enlarged, heart, relations=relations[:1])
    borderline_report = graph(enlarged, heart, borderline, relations=relations)

    assert label_chestxray14(hedged_report, finding_map, NO_NAMES)["Cardiomegaly"] == 0
    assert label_chestxray14(borderline_report, finding_map, NO_NAMES)["Cardiomegaly"] == 1


def test_chexpert_positive_wins_over_uncertain(finding_map: FindingMap) -> None:
    labels = label_chexpert(
        graph(
            entity("atelectasis", "disorder_present", "uncertain"),
            entity("atelectasis", "disorder_present"),
        ),
        finding_map,
    )

    assert labels["Atelectasis"] == 1


def test_chexpert_uncertain_wins_over_negative(finding_map: FindingMap) -> None:
    labels = label_chexpert(
        graph(
            entity("pneumonia", "disorder_notpresent", "absent"),
            entity("pneumonia", "disorder_present", "uncertain"),
        ),
        finding_map,
    )

    assert labels["Pneumonia"] == -1
    assert labels["No Finding"] is None


def test_chexpert_unmentioned_is_blank(finding_map: FindingMap) -> None:
    labels = label_chexpert(graph(), finding_map)

    assert set(labels) == set(CHEXPERT_OBSERVATIONS)
    assert labels["Fracture"] is None
    assert labels["No Finding"] == 1


def test_chexpert_device_keeps_no_finding(finding_map: FindingMap) -> None:
    labels = label_chexpert(graph(entity("pacemaker", "devices_present")), finding_map)

    assert labels["Support Devices"] == 1
    assert labels["No Finding"] == 1


def test_chexpert_normal_heart_is_negative(finding_map: FindingMap) -> None:
    normal, heart = entity("normal", "concept"), entity("heart", "anatomy")
    labels = label_chexpert(
        graph(normal, heart, relations=(Relation(head=0, tail=1, type="modify"),)), finding_map
    )

    assert labels["Cardiomegaly"] == 0


def test_finding_map_unknown_finding_raises(tmp_path) -> None:
    path = tmp_path / "map.csv"
    path.write_text(
        "schema,finding,canonical,label,linked,value\nchexpert,Pleurisy,pleurisy,disorder,,\n"
    )

    with pytest.raises(ValueError, match="unknown finding 'Pleurisy'"):
        FindingMap.from_csv(path)


def test_finding_map_wildcard_matches_label_prefix() -> None:
    finding_map = FindingMap([FindingRule("chexpert", "Support Devices", "*", "devices")])

    assert finding_map.findings("chexpert", entity("picc", "devices_notpresent"), []) == [
        ("Support Devices", None)
    ]
    assert finding_map.findings("chexpert", entity("mass", "disorder_present"), []) == []


def test_report_text_skips_empty_sections() -> None:
    assert report_text("", "No acute disease.") == "No acute disease."
    assert report_text("Clear lungs. ", " Normal.") == "Clear lungs.\nNormal."


def test_write_labels_round_trips(tmp_path) -> None:
    path = tmp_path / "labels.csv"
    row = {name: 0 for name in CHESTXRAY14_COLUMNS[1:]}
    write_labels(path, ["CXR7"], [row], "chestxray14")

    assert path.read_text().splitlines()[0] == ",".join(CHESTXRAY14_COLUMNS)
    assert read_labels(path, "chestxray14")["CXR7"]["Mass"] == "0"


@pytest.mark.parametrize("text", ["", "   \n\t", "XXXX XXXX.", "xxxx, XXXX", "___ .", "-"])
def test_has_report_text_false_without_words(text: str) -> None:
    assert not has_report_text(text)


@pytest.mark.parametrize("text", ["No effusion.", "XXXX normal XXXX", "1."])
def test_has_report_text_true_with_words(text: str) -> None:
    assert has_report_text(text)


def test_unlabelled_row_chestxray14_not_normal() -> None:
    row = unlabelled_row("chestxray14")

    assert list(row) == list(CHESTXRAY14_COLUMNS[1:])
    assert set(row.values()) == {0}


def test_unlabelled_row_chexpert_all_blank() -> None:
    row = unlabelled_row("chexpert")

    assert list(row) == list(CHEXPERT_OBSERVATIONS)
    assert set(row.values()) == {None}
