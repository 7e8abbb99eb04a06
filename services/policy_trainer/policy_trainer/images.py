"""Load chest X-ray images from PNG, JPEG or DICOM files as 8-bit RGB PIL images.

The vision-language processors expect 8-bit RGB input, while radiographs usually come as
12 to 16-bit DICOM. A grayscale DICOM image goes through the display pipeline of the
DICOM standard (PS3.3 C.11). First the modality LUT (rescale slope and intercept) maps
stored values to modality units. Then the VOI LUT maps them to [0, 1]: the VOI LUT
Sequence if present, else Window Center and Window Width, else the min-max range of the
pixels. Last, MONOCHROME1 images are inverted, because there the lowest value is white.

Every failure raises ``policy_trainer.errors.DataError`` naming the file and the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from policy_trainer.errors import DataError

logger = logging.getLogger(__name__)

DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})

# A DICOM Part 10 file has a 128-byte preamble followed by these 4 bytes (PS3.10 7.1).
_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"

_MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
_PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def load_image(path: str | Path, *, max_side: int | None = None) -> Image.Image:
    """Load a PNG, JPEG or DICOM file as an 8-bit RGB image.

    DICOM is recognized by its suffix or by the ``DICM`` marker after the preamble, and
    everything else goes to Pillow. With ``max_side``, an image whose longer side
    exceeds it is shrunk to that size, keeping the aspect ratio.
    """
    path = Path(path)
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels or None, got {max_side}")
    if not path.is_file():
        raise DataError(f"image file {path} not found")

    image = load_dicom(path) if is_dicom(path) else _load_pillow(path)
    if max_side is not None and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return image


def is_dicom(path: Path) -> bool:
    """Return True when ``path`` has a DICOM suffix or starts like a DICOM Part 10 file."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(_DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC))
    except OSError:
        return False
    return head[_DICOM_MAGIC_OFFSET:] == _DICOM_MAGIC


def load_dicom(path: str | Path) -> Image.Image:
    """Load the first frame of a DICOM file as an 8-bit RGB image.

    A multi-frame file (cine, tomosynthesis) contributes only its first frame, because
    the policy takes one image per question.
    """
    path = Path(path)
    dataset = _read_dicom(path)
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    frame = _decode_first_frame(path, dataset)

    if photometric in _MONOCHROME:
        gray = _grayscale_to_unit(frame, dataset, path)
        if photometric == "MONOCHROME1":
            gray = 1.0 - gray
        pixels = np.rint(gray * 255.0).astype(np.uint8)
        return Image.fromarray(pixels).convert("RGB")

    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        frame = apply_color_lut(frame, dataset)
    elif frame.ndim != 3 or frame.shape[-1] != 3:
        raise DataError(
            f"DICOM file {path}: photometric interpretation {photometric or '(missing)'} "
            f"with pixel shape {frame.shape} is not supported; expected MONOCHROME1, "
            "MONOCHROME2, RGB, YBR_* or PALETTE COLOR"
        )
    return Image.fromarray(_color_to_uint8(frame, dataset))


def _read_dicom(path: Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError as error:
        raise DataError(f"DICOM file {path} is not valid DICOM: {error}") from error
    except (OSError, EOFError, ValueError, KeyError) as error:
        raise DataError(f"DICOM file {path} cannot be read: {error}") from error

    if not any(keyword in dataset for keyword in _PIXEL_DATA_KEYWORDS):
        raise DataError(
            f"DICOM file {path} has no Pixel Data element, so it contains no image "
            f"(SOP class {dataset.get('SOPClassUID', 'unknown')}); point the record at an "
            "image object such as a CR or DX radiograph"
        )
    return dataset


def _decode_first_frame(path: Path, dataset: Any) -> np.ndarray:
    from pydicom.pixels import pixel_array

    file_meta = getattr(dataset, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    _check_decoder(path, syntax)
    frames = int(dataset.get("NumberOfFrames") or 1)
    if frames > 1:
        logger.debug("DICOM file %s has %d frames; using the first", path, frames)

    try:
        # index=0 decodes only the first frame of a multi-frame file.
        return pixel_array(dataset, index=0 if frames > 1 else None)
    except (RuntimeError, NotImplementedError, ValueError, AttributeError) as error:
        raise DataError(f"DICOM file {path}: decoding the pixel data failed: {error}") from error


def _check_decoder(path: Path, syntax: Any) -> None:
    """Raise a DataError naming the packages to install when no decoder handles ``syntax``."""
    if syntax is None:
        return
    from pydicom.pixels.decoders.base import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as error:
        raise DataError(
            f"DICOM file {path}: transfer syntax {syntax.name} ({syntax}) has no pixel data "
            "decoder in pydicom"
        ) from error
    if decoder.is_available:
        return
    missing = "; ".join(decoder.missing_dependencies) or "no plugin reported its dependencies"
    raise DataError(
        f"DICOM file {path}: pixel data is compressed with {syntax.name} ({syntax}) and no "
        f"installed decoder handles it; install one of these decoder plugins: {missing}"
    )


def _grayscale_to_unit(frame: np.ndarray, dataset: Any, path: Path) -> np.ndarray:
    """Apply the modality LUT and the VOI LUT or window, returning values in [0, 1]."""
    from pydicom.pixels import apply_modality_lut

    if frame.ndim != 2:
        raise DataError(f"DICOM file {path}: expected a 2-D grayscale frame, got {frame.shape}")
    values = apply_modality_lut(frame, dataset)

    if dataset.get("VOILUTSequence"):
        return _apply_voi_lut_sequence(values, dataset)
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        center = _first_value(dataset.WindowCenter)
        width = _first_value(dataset.WindowWidth)
        function = str(dataset.get("VOILUTFunction", "LINEAR")).upper()
        return apply_window(values, center=center, width=width, function=function, path=path)
    return _min_max(values)


def apply_window(
    values: np.ndarray, *, center: float, width: float, function: str = "LINEAR",
    path: Path | None = None,
) -> np.ndarray:
    """Map ``values`` through a DICOM window (PS3.3 C.11.2.1.2 and C.11.2.1.3) to [0, 1].

    ``function`` is the VOI LUT Function: LINEAR (the default), LINEAR_EXACT or SIGMOID.
    """
    values = values.astype(np.float64)
    where = f"DICOM file {path}: " if path is not None else ""
    if function == "LINEAR":
        # The standard's linear window is defined on (center - 0.5, width - 1).
        if width < 1:
            raise DataError(f"{where}Window Width {width} is below 1, invalid for LINEAR")
        return np.clip((values - (center - 0.5)) / max(width - 1, 1e-9) + 0.5, 0.0, 1.0)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise DataError(f"{where}Window Width {width} must be above 0 for LINEAR_EXACT")
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if function == "SIGMOID":
        if width <= 0:
            raise DataError(f"{where}Window Width {width} must be above 0 for SIGMOID")
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    raise DataError(
        f"{where}VOI LUT Function {function!r} is not supported; "
        "expected LINEAR, LINEAR_EXACT or SIGMOID"
    )


def _apply_voi_lut_sequence(values: np.ndarray, dataset: Any) -> np.ndarray:
    from pydicom.pixels import apply_voi

    # The LUT is indexed by stored integers, so a rescaled float array is rounded first.
    if not np.issubdtype(values.dtype, np.integer):
        values = np.rint(values).astype(np.int64)
    mapped = apply_voi(values, dataset, index=0)
    output_bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
    return mapped.astype(np.float64) / float(2**output_bits - 1)


def _min_max(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def _first_value(value: Any) -> float:
    """Return the first value of a possibly multi-valued DS element (the default window)."""
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue):
        return float(value[0])
    return float(value)


def _color_to_uint8(frame: np.ndarray, dataset: Any) -> np.ndarray:
    """Scale an RGB frame to 8 bits (pydicom has already converted YBR to RGB)."""
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype.kind == "f":
        return np.rint(_min_max(frame) * 255.0).astype(np.uint8)

    # A palette lookup returns 16-bit entries, while other frames carry Bits Stored bits.
    if dataset.get("PhotometricInterpretation") == "PALETTE COLOR":
        bits = 8 * frame.dtype.itemsize
    else:
        bits = int(dataset.get("BitsStored", 8 * frame.dtype.itemsize))
    scaled = frame.astype(np.float64) / float(2**bits - 1)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def _load_pillow(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.copy()
    except UnidentifiedImageError as error:
        raise DataError(
            f"image file {path} is not a PNG, JPEG or DICOM image Pillow or pydicom can read"
        ) from error
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"image file {path} is truncated or corrupt: {error}") from error
    return _pillow_to_rgb(image)


def _pillow_to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, rescaling 16-bit and float grayscale."""
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "F"}:
        # A plain convert("L") clips 16-bit values at 255, so rescale the range instead.
        values = np.asarray(image, dtype=np.float64)
        pixels = np.rint(_min_max(values) * 255.0).astype(np.uint8)
        return Image.fromarray(pixels).convert("RGB")
    if image.mode == "RGB":
        return image
    # NOTE: transparency is dropped, not composited, which is harmless for radiographs.
    return image.convert("RGB")
