"""Parsing of <think>/<answer> completions."""

from __future__ import annotations

import pytest

from kg_reward.tags import ParsedCompletion, parse_completion


def test_tags_well_formed() -> None:
    parsed = parse_completion("<think>Small effusion.</think>\n<answer>yes</answer>")

    assert parsed == ParsedCompletion(think="Small effusion.", answer="yes", well_formed=True)


def test_tags_case_insensitive_and_whitespace() -> None:
    parsed = parse_completion("  <THINK> a </THINK> <Answer> b </Answer>\n")

    assert parsed == ParsedCompletion(think="a", answer="b", well_formed=True)


def test_tags_missing_everything_uses_whole_text() -> None:
    parsed = parse_completion("Small effusion, so yes.")

    assert parsed == ParsedCompletion(
        think="Small effusion, so yes.", answer=None, well_formed=False
    )


def test_tags_missing_think_uses_text_without_answer() -> None:
    parsed = parse_completion("Small effusion. <answer>yes</answer>")

    assert parsed.think == "Small effusion."
    assert parsed.answer == "yes"
    assert not parsed.well_formed


def test_tags_unclosed_think_ends_at_answer() -> None:
    parsed = parse_completion("<think>Small effusion. <answer>yes</answer>")

    assert parsed.think == "Small effusion."
    assert parsed.answer == "yes"
    assert not parsed.well_formed


def test_tags_unclosed_answer_takes_rest() -> None:
    parsed = parse_completion("<think>x</think><answer>no effusion")

    assert parsed.answer == "no effusion"
    assert not parsed.well_formed


def test_tags_stray_closing_think() -> None:
    parsed = parse_completion("Reasoning here.</think><answer>no</answer>")

    assert parsed.think == "Reasoning here."
    assert not parsed.well_formed


def test_tags_repeated_blocks_joined_and_last_answer() -> None:
    parsed = parse_completion(
        "<think>a</think><think>b</think><answer>first</answer><answer>second</answer>"
    )

    assert parsed.think == "a\nb"
    assert parsed.answer == "second"
    assert not parsed.well_formed


def test_tags_text_outside_blocks_not_well_formed() -> None:
    parsed = parse_completion("Hello <think>a</think><answer>b</answer>")

    assert not parsed.well_formed


def test_tags_answer_before_think_not_well_formed() -> None:
    parsed = parse_completion("<answer>b</answer><think>a</think>")

    assert parsed.think == "a"
    assert not parsed.well_formed


def test_tags_custom_names() -> None:
    parsed = parse_completion(
        "<reasoning>x</reasoning><final>y</final>", think_tag="reasoning", answer_tag="final"
    )

    assert parsed == ParsedCompletion(think="x", answer="y", well_formed=True)


def test_tags_invalid_name_raises() -> None:
    with pytest.raises(ValueError, match="tag name"):
        parse_completion("x", think_tag="<think>")


def test_tags_non_str_raises() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse_completion(None)  # type: ignore[arg-type]
