"""Embeddings of the image, question and rationale of every pool item.

Every backend returns an L2-normalized float32 matrix with one row per item (sparse CSR
for TF-IDF, dense otherwise), so a cosine similarity is a dot product. A row of zeros
stands for "nothing to embed" (an item without an image, or an image file that cannot
be found) and has similarity 0 with every item.

Backends:

- ``tfidf`` (text, default): TF-IDF of word unigrams and bigrams (scikit-learn), fitted on
  the pool itself; no weights needed.
- ``thumbnail`` (image, default): the image as a grayscale ``size`` x ``size`` thumbnail,
  mean-centred and L2-normalized; no weights needed. DICOM files load through
  ``policy_trainer.images``.
- ``sentence_transformers`` (text) and ``biomedclip`` (text or image, via open_clip):
  weights from a local folder. The packages are optional and imported only here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policy_trainer.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Scale every row to unit L2 norm, leaving all-zero rows at zero."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def embed_texts(texts: Sequence[str], backend: str, model_path: Path | None = None) -> Any:
    """Embed ``texts`` and return normalized rows (a scipy CSR matrix for tfidf)."""
    if backend == "tfidf":
        return _tfidf(texts)
    if backend == "sentence_transformers":
        return _sentence_transformers(texts, _local_dir(model_path, "text_model_path"))
    if backend == "biomedclip":
        return _biomedclip_texts(texts, _local_dir(model_path, "text_model_path"))
    raise ConfigError(f"unknown text backend {backend!r}")


def embed_images(
    paths: Sequence[Path | None], backend: str, *, size: int = 32,
    model_path: Path | None = None,
) -> np.ndarray:
    """Embed image files; None or a missing file gives a zero row (similarity 0)."""
    if backend == "thumbnail":
        rows = [_thumbnail(path, size) if path is not None else None for path in paths]
        if all(row is None for row in rows):
            # One zero column is enough when no item has an image, and saves memory.
            return np.zeros((len(paths), 1), dtype=np.float32)
        width = size * size
        return normalize_rows(np.stack([
            row if row is not None else np.zeros(width, dtype=np.float32) for row in rows
        ]))
    if backend == "biomedclip":
        return _biomedclip_images(paths, _local_dir(model_path, "image_model_path"))
    raise ConfigError(f"unknown image backend {backend!r}")


def resolve_image(record: dict[str, Any], image_root: Path | None) -> Path | None:
    """Return the existing image file of a record, or None when it has none on disk."""
    image = record.get("image")
    if not image:
        return None
    path = Path(str(image))
    if not path.is_absolute() and image_root is not None:
        path = Path(image_root) / path
    return path if path.is_file() else None


def _tfidf(texts: Sequence[str]) -> Any:
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not any(text.strip() for text in texts):
        return sparse.csr_matrix((len(texts), 1), dtype=np.float32)
    # Rows come out L2-normalized (norm="l2"); empty texts stay all-zero rows.
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, norm="l2", dtype=np.float32
    )
    return vectorizer.fit_transform(texts).tocsr()


def _thumbnail(path: Path, size: int) -> np.ndarray | None:
    from PIL import Image

    from policy_trainer.images import load_image

    try:
        image = load_image(path)
    except DataError as error:
        logger.warning("image %s cannot be read, so it gets image similarity 0: %s", path, error)
        return None
    thumbnail = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(thumbnail, dtype=np.float32).reshape(-1) / 255.0
    return pixels - pixels.mean()


def _local_dir(model_path: Path | None, field_name: str) -> Path:
    if not model_path or not Path(model_path).is_dir():
        raise ConfigError(f"{field_name}={model_path!r} is not a local model folder")
    return Path(model_path)


def _sentence_transformers(texts: Sequence[str], path: Path) -> np.ndarray:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ConfigError(
            "text_backend 'sentence_transformers' needs the sentence-transformers package: "
            "pip install sentence-transformers, or use text_backend: tfidf"
        ) from error
    model = SentenceTransformer(str(path), local_files_only=True)
    return normalize_rows(model.encode(list(texts), batch_size=64, convert_to_numpy=True))


def _open_clip(path: Path) -> tuple[Any, Any, Any]:
    try:
        import open_clip
    except ImportError as error:
        raise ConfigError(
            "backend 'biomedclip' needs the open_clip_torch package: pip install "
            "open_clip_torch, or use the tfidf and thumbnail backends"
        ) from error
    # NOTE: untested here because open_clip is not installed. The "local-dir:" scheme
    # reads open_clip_config.json and the weights from a folder; older open_clip releases
    # lack it.
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{path}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    model.eval()
    return model, preprocess, tokenizer


def _biomedclip_texts(texts: Sequence[str], path: Path) -> np.ndarray:
    import torch

    model, _, tokenizer = _open_clip(path)
    rows = []
    with torch.no_grad():
        for begin in range(0, len(texts), 64):
            tokens = tokenizer(list(texts[begin:begin + 64]))
            rows.append(model.encode_text(tokens).float().numpy())
    return normalize_rows(np.concatenate(rows) if rows else np.zeros((0, 1)))


def _biomedclip_images(paths: Sequence[Path | None], path: Path) -> np.ndarray:
    import torch

    from policy_trainer.images import load_image

    model, preprocess, _ = _open_clip(path)
    present = [(index, image) for index, image in enumerate(paths) if image is not None]
    with torch.no_grad():
        features = [
            model.encode_image(preprocess(load_image(image)).unsqueeze(0)).float().numpy()[0]
            for _, image in present
        ]
    width = features[0].shape[0] if features else 1
    matrix = np.zeros((len(paths), width), dtype=np.float32)
    for (index, _), feature in zip(present, features, strict=True):
        matrix[index] = feature
    return normalize_rows(matrix)
