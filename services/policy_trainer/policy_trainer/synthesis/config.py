"""Settings of the ``synthesize`` stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from policy_trainer.synthesis.questions import KINDS
from policy_trainer.synthesis.reports import REPORT_SOURCES

DEFAULT_SYSTEM_PROMPT = (
    "You are a radiologist answering questions about a chest X-ray. Reason step by step "
    "inside <think></think>, then give the final answer inside <answer></answer>."
)


@dataclass
class SynthesizeConfig:
    """Question-answer synthesis from radiology reports (``policy-trainer synthesize``)."""

    source: str = field(
        default="nlmcxr",
        metadata={"help": "Report layout: csv (uid, findings, impression columns), nlmcxr "
                  "(Open-i XML in NLMCXR_reports.tgz) or mimic (pNN/pXXXXXXXX/sYYYYYYYY.txt)."},
    )
    input_path: Path | None = field(
        default=None,
        metadata={"help": "Report CSV, archive or folder. For nlmcxr, empty means the archive "
                  "shipped in the installed torchxrayvision package."},
    )
    output_dir: Path = field(
        default=Path("runs/synthesis"),
        metadata={"help": "Folder for train.jsonl, dev.jsonl, test.jsonl and summary.json."},
    )
    pipeline_path: Path | None = field(
        default=None,
        metadata={"help": "Saved kg_reward extraction pipeline; empty builds the default one."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of templates, balancing and splits."})
    kinds: list[str] = field(
        default_factory=lambda: list(KINDS),
        metadata={"help": "Question kinds to write: basic, region, comparison."},
    )
    split_ratios: list[float] = field(
        default_factory=lambda: [0.8, 0.1, 0.1],
        metadata={"help": "Fractions of reports in train, dev and test; they must sum to 1."},
    )
    balance_answers: bool = field(
        default=True,
        metadata={"help": "Drop random items of the larger of yes/no within each kind until "
                  "both answers are equally frequent."},
    )
    max_reports: int | None = field(
        default=None, metadata={"help": "Read at most this many reports (empty: all)."}
    )
    max_rationale_sentences: int = field(
        default=3, metadata={"help": "Most report sentences quoted in one rationale."}
    )
    batch_size: int = field(
        default=64, metadata={"help": "Texts per batch of the extraction pipeline."}
    )
    system_prompt: str | None = field(
        default=DEFAULT_SYSTEM_PROMPT,
        metadata={"help": "System message of every chat; empty leaves it out."},
    )
    image_dir: Path | None = field(
        default=None,
        metadata={"help": "Folder of the report images. When set, image = <image_dir>/<image "
                  "id><image_suffix>; otherwise the image id or path as the report names it."},
    )
    image_suffix: str = field(
        default=".png", metadata={"help": "File suffix added to image ids when image_dir is set."}
    )
    llm_base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible API root (for example http://127.0.0.1:8080/v1) "
                  "to rewrite questions and rationales; empty disables the language model."},
    )
    llm_model: str | None = field(
        default=None, metadata={"help": "Model name sent to the chat endpoint."}
    )
    llm_api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "Environment variable that contains the endpoint's API key, if any."},
    )
    llm_timeout_s: float = field(
        default=60.0, metadata={"help": "Timeout of one chat request, in seconds."}
    )
    llm_max_items: int | None = field(
        default=None,
        metadata={"help": "Send at most this many items to the language model (empty: all)."},
    )

    def __post_init__(self) -> None:
        if self.source not in REPORT_SOURCES:
            raise ValueError(
                f"source={self.source!r} is not one of {', '.join(REPORT_SOURCES)}"
            )
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(
                f"kinds={self.kinds!r} must be a non-empty subset of {', '.join(KINDS)}"
            )
        ratios = self.split_ratios
        if (len(ratios) != 3 or any(r < 0 for r in ratios)
                or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6)):
            raise ValueError(
                f"split_ratios={ratios!r} must be three non-negative fractions "
                "(train, dev, test) that sum to 1, for example [0.8, 0.1, 0.1]"
            )
        if self.max_rationale_sentences < 1:
            raise ValueError(
                f"max_rationale_sentences={self.max_rationale_sentences} must be at least 1"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be at least 1")
        if self.max_reports is not None and self.max_reports < 1:
            raise ValueError(f"max_reports={self.max_reports} must be at least 1 or empty")
        if self.llm_base_url and not self.llm_model:
            raise ValueError(
                f"llm_base_url={self.llm_base_url!r} is set but llm_model is empty; "
                "set llm_model to the model name the endpoint serves"
            )
        if self.llm_timeout_s <= 0:
            raise ValueError(f"llm_timeout_s={self.llm_timeout_s} must be positive")
