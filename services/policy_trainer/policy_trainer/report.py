"""The demo's evaluation report: a Markdown page with a results table and PNG plots.

Inputs are the files the stages leave in the run folder:

- ``grpo/completions.jsonl``: one row per sampled completion with its ``step``, the
  ``reward`` and its components (``answer``, ``entity``, ``relation``).
- ``eval/sft.json`` and ``eval/grpo.json``: the metrics of ``policy-trainer evaluate``.

Precision and recall per GRPO step are not in the training logs, because the reward only
returns the Jaccard similarity. The report re-scores every logged completion against its
reference through ``POST /score`` with ``explain: true`` and counts the matched, missing
and extra entities and relation triplets. Per step they are micro-averaged: precision =
matched / (matched + extra) and recall = matched / (matched + missing), summed over all
completions of the step. The re-scoring sends the scoring options of the GRPO config
(``reward_options``), so items match as they did in training.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REWARD_COMPONENTS = ("reward", "answer", "entity", "relation")

# Metrics shown first in the table, in this order; any other numeric metric follows.
PREFERRED_METRICS = (
    "answer_accuracy",
    "mean_reward",
    "mean_answer_reward",
    "mean_entity_reward",
    "mean_relation_reward",
    "entity_precision",
    "entity_recall",
    "relation_precision",
    "relation_recall",
    "n_items",
    "n_failed",
)
# Counts and sizes, left out of the bar chart of rates.
COUNT_METRICS = ("n_items", "n_failed")


@dataclass
class MatchCounts:
    """Matched, missing and extra items summed over some completions."""

    matched: int = 0
    missing: int = 0
    extra: int = 0

    def add(self, matched: int, missing: int, extra: int) -> None:
        self.matched += matched
        self.missing += missing
        self.extra += extra

    @property
    def precision(self) -> float | None:
        denominator = self.matched + self.extra
        return self.matched / denominator if denominator else None

    @property
    def recall(self) -> float | None:
        denominator = self.matched + self.missing
        return self.matched / denominator if denominator else None


@dataclass
class StepMatching:
    """Entity and relation match counts of the completions of one GRPO step."""

    step: int
    entities: MatchCounts = field(default_factory=MatchCounts)
    relations: MatchCounts = field(default_factory=MatchCounts)
    scored: int = 0


@dataclass
class ReportInputs:
    """Everything ``write_report`` needs; paths are inside the run folder."""

    run_dir: Path
    scale: str
    reward_url: str
    stage_seconds: Mapping[str, float]
    sft_metrics: Mapping[str, Any]
    grpo_metrics: Mapping[str, Any]
    completions: Sequence[Mapping[str, Any]]
    step_matching: Sequence[StepMatching]
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Config values worth showing, per stage (the run's configs/ folder has them all)."""


# --- reading the stage outputs ------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON Lines file, skipping blank lines."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float | None]:
    """Return the numeric leaves of a metrics mapping, nested keys joined with dots.

    Integers stay ``int`` so that the table prints counts without decimals. A null (a
    metric with an empty denominator, such as precision without any predicted item) stays
    ``None`` and shows as n/a.
    """
    flat: dict[str, float | None] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if value is None:
            flat[name] = None
        elif isinstance(value, (int, float)):
            if math.isfinite(value):
                flat[name] = value
        elif isinstance(value, Mapping):
            flat.update(flatten_metrics(value, prefix=f"{name}."))
    return flat


def ordered_metric_names(*metric_sets: Mapping[str, float | None]) -> list[str]:
    """Order metric names: the preferred ones first, then the rest alphabetically."""
    names = set().union(*(set(metrics) for metrics in metric_sets))
    first = [name for name in PREFERRED_METRICS if name in names]
    rest = sorted(names - set(first))
    return first + rest


def step_reward_means(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Average each reward component over the completions of each step.

    Completions whose component is ``None`` (a failed reward request) are left out of
    that component's mean.
    """
    sums: dict[str, dict[int, list[float]]] = {name: defaultdict(list) for name in
                                               REWARD_COMPONENTS}
    for row in rows:
        step = int(row.get("step", 0))
        for name in REWARD_COMPONENTS:
            value = row.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sums[name][step].append(float(value))
    return {
        name: [(step, sum(values) / len(values)) for step, values in sorted(by_step.items())]
        for name, by_step in sums.items()
        if by_step
    }


# --- precision and recall per step --------------------------------------------------


def completion_references(
    rows: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str | None] | None]:
    """Find the reference rationale and answer of each completion row.

    A row that carries ``reference`` is used as is. Otherwise the row is joined to the
    training records by ``id``, then by the question text found in its prompt.
    """
    by_id = {str(record["id"]): record for record in records if "id" in record}
    by_question = {str(record["question"]).strip(): record for record in records
                   if "question" in record}
    references: list[tuple[str, str | None] | None] = []
    for row in rows:
        if row.get("reference"):
            references.append((str(row["reference"]), row.get("reference_answer")))
            continue
        record = by_id.get(str(row.get("id"))) or _record_for_prompt(row.get("prompt"),
                                                                      by_question)
        if record is None:
            references.append(None)
        else:
            references.append((str(record["rationale"]), record.get("answer")))
    return references


def _record_for_prompt(prompt: Any, by_question: Mapping[str, Mapping[str, Any]]
                       ) -> Mapping[str, Any] | None:
    if isinstance(prompt, list):
        user_turns = [turn.get("content", "") for turn in prompt
                      if isinstance(turn, Mapping) and turn.get("role") == "user"]
        prompt = user_turns[-1] if user_turns else ""
    if not isinstance(prompt, str):
        return None
    exact = by_question.get(prompt.strip())
    if exact is not None:
        return exact
    # A rendered chat prompt wraps the question in template text; the longest question
    # contained in it is the one that was asked.
    contained = [question for question in by_question if question and question in prompt]
    return by_question[max(contained, key=len)] if contained else None


def match_counts_per_step(
    rows: Sequence[Mapping[str, Any]],
    references: Sequence[tuple[str, str | None] | None],
    score: Any,
    reward_options: Mapping[str, Any] | None = None,
    batch_size: int = 64,
) -> list[StepMatching]:
    """Re-score completions with explanations and sum match counts per step.

    ``score`` is a ``kg_reward.client.RewardClient`` (anything with its ``score`` method)
    and ``reward_options`` the ScoreOptions fields that training sent, if any. Rows
    without a reference and items the service failed to score are skipped.
    """
    from kg_schema.scoring import ScoreOptions

    options = ScoreOptions(**{**(reward_options or {}), "explain": True})
    steps: dict[int, StepMatching] = {}
    indexed = [(row, ref) for row, ref in zip(rows, references, strict=True) if ref]
    for start in range(0, len(indexed), batch_size):
        batch = indexed[start:start + batch_size]
        items = [
            {"completion": str(row.get("completion", "")), "reference": ref[0],
             "reference_answer": ref[1]}
            for row, ref in batch
        ]
        result = score.score(items, options=options)
        explanations = result.explanations or [None] * len(batch)
        for (row, _), explanation in zip(batch, explanations, strict=True):
            step = int(row.get("step", 0))
            matching = steps.setdefault(step, StepMatching(step=step))
            if explanation is None:
                continue
            matching.scored += 1
            entities, relations = explanation.entities, explanation.relations
            matching.entities.add(len(entities.matched), len(entities.missing),
                                  len(entities.extra))
            matching.relations.add(len(relations.matched), len(relations.missing),
                                   len(relations.extra))
    skipped = len(rows) - len(indexed)
    if skipped:
        logger.warning("%d of %d completions had no reference and were not re-scored",
                       skipped, len(rows))
    return [steps[step] for step in sorted(steps)]


# --- plots --------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_steps(axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_rewards_per_step(means: Mapping[str, Sequence[tuple[int, float]]], path: Path) -> Path:
    """Draw the mean total reward and its components against the GRPO step."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    for name, points in means.items():
        steps, values = zip(*points, strict=True)
        axes.plot(steps, values, marker="o", markersize=3, label=name)
    _integer_steps(axes)
    axes.set_xlabel("GRPO step")
    axes.set_ylabel("mean over the step's completions")
    axes.set_title("Reward components per step")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_precision_recall_per_step(steps: Sequence[StepMatching], path: Path) -> Path:
    """Draw micro precision and recall of entity and relation matching per GRPO step."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    # Colour = entities or relations; line style = precision (solid) or recall (dashed).
    series = {
        ("entity precision", "tab:blue", "-"): [(s.step, s.entities.precision) for s in steps],
        ("entity recall", "tab:blue", "--"): [(s.step, s.entities.recall) for s in steps],
        ("relation precision", "tab:orange", "-"):
            [(s.step, s.relations.precision) for s in steps],
        ("relation recall", "tab:orange", "--"): [(s.step, s.relations.recall) for s in steps],
    }
    for (label, colour, style), points in series.items():
        # A step without any predicted (or any reference) item has no precision (recall).
        known = [(step, value) for step, value in points if value is not None]
        if known:
            xs, ys = zip(*known, strict=True)
            axes.plot(xs, ys, linestyle=style, color=colour, marker="o", markersize=3,
                      label=label)
    _integer_steps(axes)
    axes.set_xlabel("GRPO step")
    axes.set_ylabel("micro average over the step")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("Precision and recall of entity and relation matching")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_sft_vs_grpo(sft: Mapping[str, float | None], grpo: Mapping[str, float | None],
                     path: Path) -> Path:
    """Draw grouped bars of the SFT and GRPO metrics that are rates in [0, 1].

    A metric that is null for one model is drawn as 0 for it.
    """
    plt = _pyplot()
    names = [name for name in ordered_metric_names(sft, grpo)
             if all(0.0 <= (metrics.get(name) or 0.0) <= 1.0 for metrics in (sft, grpo))
             and name not in COUNT_METRICS and "counts." not in name
             and "seconds" not in name]
    positions = range(len(names))
    width = 0.4
    figure, axes = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4))
    axes.bar([x - width / 2 for x in positions], [sft.get(n) or 0.0 for n in names], width,
             label="SFT")
    axes.bar([x + width / 2 for x in positions], [grpo.get(n) or 0.0 for n in names], width,
             label="GRPO")
    axes.set_xticks(list(positions))
    axes.set_xticklabels([name.replace("_", "\n") for name in names], fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_title("Held-out test split: SFT vs GRPO")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# --- the Markdown page --------------------------------------------------------------


def results_table(sft: Mapping[str, float | None], grpo: Mapping[str, float | None]) -> str:
    """Return a Markdown table with one row per metric: SFT, GRPO and the change."""
    lines = ["| metric | SFT | GRPO | change |", "|---|---:|---:|---:|"]
    for name in ordered_metric_names(sft, grpo):
        before, after = sft.get(name), grpo.get(name)
        change = after - before if before is not None and after is not None else None
        lines.append(f"| {name} | {_number(before)} | {_number(after)} | "
                     f"{_number(change, signed=True)} |")
    return "\n".join(lines)


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def write_report(inputs: ReportInputs) -> Path:
    """Write ``report.md`` and its plots into ``inputs.run_dir``; return the report path."""
    run_dir = inputs.run_dir
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    sft = flatten_metrics(inputs.sft_metrics)
    grpo = flatten_metrics(inputs.grpo_metrics)

    means = step_reward_means(inputs.completions)
    plots = {"comparison": plot_sft_vs_grpo(sft, grpo, plots_dir / "sft_vs_grpo.png")}
    if means:
        plots["rewards"] = plot_rewards_per_step(means, plots_dir / "rewards_per_step.png")
    if inputs.step_matching:
        plots["matching"] = plot_precision_recall_per_step(
            inputs.step_matching, plots_dir / "precision_recall_per_step.png")

    text = _render(inputs, sft, grpo, means, plots)
    path = run_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    logger.info("wrote %s with %d plots", path, len(plots))
    return path


def _render(inputs: ReportInputs, sft: Mapping[str, float | None],
            grpo: Mapping[str, float | None],
            means: Mapping[str, Sequence[tuple[int, float]]], plots: Mapping[str, Path]) -> str:
    total = sum(inputs.stage_seconds.values())
    timing_rows = "\n".join(f"| {stage} | {seconds:.0f} |"
                            for stage, seconds in inputs.stage_seconds.items())
    n_steps = len({int(row.get("step", 0)) for row in inputs.completions})
    sections = [
        f"# kg-reward demo report ({inputs.scale} scale)",
        f"Run folder `{inputs.run_dir}`; rewards from {inputs.reward_url}. Every stage's "
        "settings are in `configs/`, its output in `logs/`.",
        "## Settings",
        _settings_table(inputs.settings),
        "## Results on the held-out test split",
        results_table(sft, grpo),
        f"![SFT vs GRPO]({_relative(plots['comparison'], inputs.run_dir)})",
        "## GRPO training",
        f"{len(inputs.completions)} logged completions over {n_steps} steps.",
    ]
    if "rewards" in plots:
        sections.append(f"![Reward components per step]"
                        f"({_relative(plots['rewards'], inputs.run_dir)})")
        last = {name: points[-1][1] for name, points in means.items()}
        first = {name: points[0][1] for name, points in means.items()}
        sections.append(_first_last_table(first, last))
    if "matching" in plots:
        sections.append(
            f"![Precision and recall per step]({_relative(plots['matching'], inputs.run_dir)})"
        )
        sections.append(
            "Precision and recall per step come from re-scoring each logged completion "
            "against its reference with `explain: true`: precision = matched / (matched + "
            "extra), recall = matched / (matched + missing), summed over the step's "
            "completions (micro average)."
        )
    sections += [
        "## Time per stage",
        "| stage | seconds |\n|---|---:|\n" + timing_rows + f"\n| total | {total:.0f} |",
    ]
    return "\n\n".join(sections) + "\n"


def _settings_table(settings: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["| stage | settings |", "|---|---|"]
    for stage, values in settings.items():
        text = ", ".join(f"{key}={value}" for key, value in values.items())
        lines.append(f"| {stage} | {text} |")
    return "\n".join(lines)


def _first_last_table(first: Mapping[str, float], last: Mapping[str, float]) -> str:
    lines = ["| component | first step | last step |", "|---|---:|---:|"]
    for name in first:
        lines.append(f"| {name} | {first[name]:.4f} | {last[name]:.4f} |")
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    return str(Path(path).relative_to(root))
