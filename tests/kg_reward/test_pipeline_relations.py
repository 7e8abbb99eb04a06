"""Relations (modify, located_at, suggestive_of) of the extraction pipeline."""

from __future__ import annotations

from kg_reward.extraction import Extractor


def triplets(extractor: Extractor, text: str) -> set[tuple[str, str, str]]:
    return extractor.extract_one(text).relation_keys()


def test_relations_size_modifies_finding(extractor: Extractor) -> None:
    assert ("small", "modify", "pleural effusion") in triplets(extractor, "Small pleural effusion.")


def test_relations_modifier_skips_laterality(extractor: Extractor) -> None:
    found = triplets(extractor, "Small left pleural effusion.")

    assert ("small", "modify", "pleural effusion") in found
    assert ("small", "modify", "left") not in found


def test_relations_laterality_modifies_anatomy(extractor: Extractor) -> None:
    # "left axilla" is not a lexicon term, so "left" and "axilla" are two anatomy entities
    found = triplets(extractor, "Nodule in the left axilla.")

    assert ("left", "modify", "axilla") in found
    assert ("nodule", "located_at", "axilla") in found


def test_relations_predicate_modifier(extractor: Extractor) -> None:
    assert ("normal", "modify", "heart") in triplets(extractor, "Heart size is normal.")


def test_relations_measurement_after_head(extractor: Extractor) -> None:
    assert ("5 mm", "modify", "nodule") in triplets(extractor, "Nodule measuring 5 mm.")


def test_relations_located_at_after_preposition(extractor: Extractor) -> None:
    found = triplets(extractor, "There is an opacity in the left lower lobe.")

    assert ("opacity", "located_at", "left lower lobe") in found
    assert ("left lower lobe", "located_at", "opacity") not in found


def test_relations_located_at_anatomy_before_finding(extractor: Extractor) -> None:
    found = triplets(extractor, "Right lower lobe pneumonia.")

    assert ("pneumonia", "located_at", "right lower lobe") in found


def test_relations_located_at_coordinated_findings(extractor: Extractor) -> None:
    found = triplets(extractor, "Atelectasis or consolidation at the left lung base.")

    assert ("atelectasis", "located_at", "left lung base") in found
    assert ("consolidation", "located_at", "left lung base") in found


def test_relations_device_located_at(extractor: Extractor) -> None:
    found = triplets(extractor, "Right PICC terminates in the SVC.")

    assert ("peripherally inserted central catheter", "located_at", "superior vena cava") in found


def test_relations_suggestive_of_direction(extractor: Extractor) -> None:
    found = triplets(extractor, "Opacity may represent pneumonia.")

    assert ("opacity", "suggestive_of", "pneumonia") in found
    assert ("pneumonia", "suggestive_of", "opacity") not in found


def test_relations_suggestive_of_cues(extractor: Extractor) -> None:
    for cue in ("consistent with", "compatible with", "suggesting", "concerning for"):
        found = triplets(extractor, f"Left basilar opacity {cue} pneumonia.")

        assert ("opacity", "suggestive_of", "pneumonia") in found, cue


def test_relations_suggestive_of_coordinated_targets(extractor: Extractor) -> None:
    found = triplets(extractor, "Bibasilar opacities, likely atelectasis or pneumonia.")

    assert ("opacity", "suggestive_of", "atelectasis") in found
    assert ("opacity", "suggestive_of", "pneumonia") in found


def test_relations_stay_within_sentence(extractor: Extractor) -> None:
    found = triplets(extractor, "Small nodule. Left lower lobe.")

    assert not any(relation == "located_at" for _, relation, _ in found)


def test_relations_indices_point_at_entities(extractor: Extractor) -> None:
    graph = extractor.extract_one(
        "Small left effusion. Opacity in the right lung, likely pneumonia."
    )

    assert graph.relations
    for relation in graph.relations:
        assert relation.head != relation.tail
        assert relation.head < len(graph.entities)
        assert relation.tail < len(graph.entities)


def test_relations_predicate_modifier_coordinated_subjects(extractor: Extractor) -> None:
    found = triplets(extractor, "Heart size and mediastinal contour are normal.")

    assert ("normal", "modify", "heart") in found
    assert ("normal", "modify", "mediastinum") in found


def test_relations_predicate_modifier_skips_place(extractor: Extractor) -> None:
    found = triplets(extractor, "Calcified granulomas in the left midlung are unchanged.")

    assert ("stable", "modify", "granuloma") in found
    assert ("stable", "modify", "left midlung") not in found


def test_relations_predicate_finding_located_at_subject(extractor: Extractor) -> None:
    found = triplets(extractor, "The heart is mildly enlarged.")

    assert ("enlargement", "located_at", "heart") in found
    assert ("mild", "modify", "enlargement") in found


def test_relations_located_at_across_line_breaks(extractor: Extractor) -> None:
    found = triplets(extractor, "Opacity\nin the left\nlower lobe.")

    assert ("opacity", "located_at", "left lower lobe") in found


def test_relations_modifier_not_across_coordinator_into_head(extractor: Extractor) -> None:
    found = triplets(extractor, "Heart size normal and lungs are clear.")

    assert ("normal", "modify", "heart") in found
    assert ("normal", "modify", "lung") not in found


def test_relations_place_after_with_not_shared(extractor: Extractor) -> None:
    found = triplets(extractor, "Pacemaker with leads in the right atrium.")

    assert ("lead", "located_at", "right atrium") in found
    assert ("pacemaker", "located_at", "right atrium") not in found


def test_relations_place_goes_to_nearest_of_and(extractor: Extractor) -> None:
    found = triplets(extractor, "Pneumomediastinum and subcutaneous emphysema in the neck.")

    assert ("subcutaneous emphysema", "located_at", "neck") in found
    assert ("pneumomediastinum", "located_at", "neck") not in found


def test_relations_place_shared_by_alternatives(extractor: Extractor) -> None:
    found = triplets(extractor, "Scarring or atelectasis in the lingula.")

    assert ("scarring", "located_at", "lingula") in found
    assert ("atelectasis", "located_at", "lingula") in found


def test_relations_place_after_both_is_shared(extractor: Extractor) -> None:
    found = triplets(extractor, "Pleural effusion and atelectasis in both lower lobes.")

    assert ("pleural effusion", "located_at", "lower lobe") in found
    assert ("atelectasis", "located_at", "lower lobe") in found


def test_relations_gap_limit_skips_line_breaks(extractor: Extractor) -> None:
    flat = "Patchy airspace opacities in the left lower lobe, compatible with infiltrate."
    wrapped = "Patchy\nairspace opacities in the left lower\nlobe, compatible with infiltrate."

    assert triplets(extractor, wrapped) == triplets(extractor, flat)
