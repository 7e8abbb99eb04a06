"""Settings of the ``mine`` stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

STRATEGIES: tuple[str, ...] = ("random", "uniform", "hard_uniform")
TEXT_BACKENDS: tuple[str, ...] = ("tfidf", "sentence_transformers", "biomedclip")
IMAGE_BACKENDS: tuple[str, ...] = ("thumbnail", "biomedclip")


@dataclass
class MineConfig:
    """Hard example mining with the SFT model (``policy-trainer mine``)."""

    model_path: Path | None = field(
        default=None, metadata={"help": "Local model folder, usually the SFT run's final/."}
    )
    pool_path: Path | None = field(
        default=None, metadata={"help": "Training pool JSONL written by synthesize (train.jsonl)."}
    )
    output_dir: Path = field(
        default=Path("runs/mine"),
        metadata={"help": "Folder for mined.jsonl, mining_report.json and the histogram."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of sampling and of the strategies."})
    sample_fraction: float = field(
        default=0.02,
        metadata={"help": "Fraction of each (kind, answer) stratum that the model answers."},
    )
    min_per_stratum: int = field(
        default=1, metadata={"help": "Fewest sampled items of a non-empty stratum."}
    )
    sigma: float = field(
        default=-0.25,
        metadata={"help": "Confidence threshold: right answers whose mean answer-token "
                  "log-probability is below it become hard seeds."},
    )
    max_new_tokens: int = field(
        default=256, metadata={"help": "Most tokens generated per answer (greedy decoding)."}
    )
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call."})
    device: str = field(
        default="auto", metadata={"help": "Torch device: auto (cuda when available), cpu, cuda."}
    )
    strategies: list[str] = field(
        default_factory=lambda: ["hard_uniform"],
        metadata={"help": "Selection strategies: random, uniform, hard_uniform. The first "
                  "strategy at the first size is written as mined.jsonl."},
    )
    sizes: list[int] = field(
        default_factory=lambda: [1000],
        metadata={"help": "Requested set sizes, for example [1000, 2000, 5000]."},
    )
    top_k: int = field(
        default=10, metadata={"help": "Most similar pool items retrieved per hard seed."}
    )
    similarity_weights: list[float] = field(
        default_factory=lambda: [1 / 3, 1 / 3, 1 / 3],
        metadata={"help": "Weights of the image, question and rationale cosine similarities."},
    )
    text_backend: str = field(
        default="tfidf",
        metadata={"help": "Text embedding: tfidf (no weights), sentence_transformers or "
                  "biomedclip (weights from text_model_path)."},
    )
    image_backend: str = field(
        default="thumbnail",
        metadata={"help": "Image embedding: thumbnail (no weights: normalized grayscale "
                  "thumbnail) or biomedclip (weights from image_model_path)."},
    )
    text_model_path: Path | None = field(
        default=None, metadata={"help": "Local folder of the text embedding model."}
    )
    image_model_path: Path | None = field(
        default=None, metadata={"help": "Local folder of the BiomedCLIP (open_clip) model."}
    )
    image_root: Path | None = field(
        default=None, metadata={"help": "Folder that relative image paths of the pool resolve in."}
    )
    thumbnail_size: int = field(
        default=32, metadata={"help": "Side of the square thumbnail descriptor, in pixels."}
    )

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is empty; set it to the SFT run's final/ folder")
        if not self.pool_path:
            raise ValueError("pool_path is empty; set it to the train.jsonl of synthesize")
        if not 0 < self.sample_fraction <= 1:
            raise ValueError(f"sample_fraction={self.sample_fraction} must be in (0, 1]")
        if self.min_per_stratum < 0:
            raise ValueError(f"min_per_stratum={self.min_per_stratum} must be >= 0")
        if not math.isfinite(self.sigma) or self.sigma > 0:
            raise ValueError(
                f"sigma={self.sigma} must be a finite log-probability <= 0, such as -0.25"
            )
        for name in ("max_new_tokens", "batch_size", "top_k", "thumbnail_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        self._check_choices()
        if not self.sizes or any(size < 1 for size in self.sizes):
            raise ValueError(f"sizes={self.sizes!r} must be positive set sizes, e.g. [1000]")
        weights = self.similarity_weights
        if len(weights) != 3 or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(
                f"similarity_weights={weights!r} must be three non-negative weights "
                "(image, question, rationale) with a positive sum"
            )

    def _check_choices(self) -> None:
        unknown = [name for name in self.strategies if name not in STRATEGIES]
        if unknown or not self.strategies:
            raise ValueError(
                f"strategies={self.strategies!r} must be a non-empty subset of "
                f"{', '.join(STRATEGIES)}"
            )
        if self.text_backend not in TEXT_BACKENDS:
            raise ValueError(
                f"text_backend={self.text_backend!r} is not one of {', '.join(TEXT_BACKENDS)}"
            )
        if self.image_backend not in IMAGE_BACKENDS:
            raise ValueError(
                f"image_backend={self.image_backend!r} is not one of {', '.join(IMAGE_BACKENDS)}"
            )
        if self.text_backend != "tfidf" and not self.text_model_path:
            raise ValueError(
                f"text_backend={self.text_backend!r} needs text_model_path, a local model folder"
            )
        if self.image_backend != "thumbnail" and not self.image_model_path:
            raise ValueError(
                f"image_backend={self.image_backend!r} needs image_model_path, a local folder"
            )
