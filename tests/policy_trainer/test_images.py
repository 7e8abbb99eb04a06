"""Tests of policy_trainer.images on real PNG, JPEG and DICOM files.

The DICOM files come from pydicom's own test data and from the PyPI package pydicom-data
(``RG1_UNCI.dcm`` is a real uncompressed chest radiograph, CR, MONOCHROME1, 15 bits).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from policy_trainer.errors import DataError
from policy_trainer.images import apply_window, is_dicom, load_image


def dicom_testfile(name: str) -> Path:
    # download=False keeps the lookup offline: the file must come from pydicom or pydicom-data.
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.fail(f"{name} is missing; install the dev extra, which holds pydicom-data")
    return Path(str(path))


@pytest.fixture(scope="module")
def radiograph() -> pydicom.Dataset:
    return pydicom.dcmread(dicom_testfile("RG1_UNCI.dcm"))


def save_copy(dataset: pydicom.Dataset, path: Path, **changes: object) -> Path:
    changed = copy.deepcopy(dataset)
    for keyword, value in changes.items():
        if value is None:
            delattr(changed, keyword)
        else:
            setattr(changed, keyword, value)
    changed.save_as(path)
    return path


def pixels(path: Path, **kwargs: object) -> np.ndarray:
    return np.asarray(load_image(path, **kwargs))  # type: ignore[arg-type]


# --- PNG and JPEG --------------------------------------------------------------------


def test_load_image_png_rgb_round_trip(tmp_path: Path) -> None:
    source = np.random.default_rng(0).integers(0, 256, size=(12, 20, 3), dtype=np.uint8)
    Image.fromarray(source).save(tmp_path / "scan.png")

    image = load_image(tmp_path / "scan.png")

    assert image.mode == "RGB"
    assert image.size == (20, 12)
    assert np.array_equal(np.asarray(image), source)


def test_load_image_png_16bit_is_rescaled(tmp_path: Path) -> None:
    ramp = np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")

    array = pixels(tmp_path / "ramp16.png")

    assert array.dtype == np.uint8
    assert array.min() == 0
    assert array.max() == 255
    # A plain mode conversion would clip every value above 255 to white.
    assert (array == 255).mean() < 0.01


def test_load_image_jpeg_grayscale_becomes_rgb(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))
    Image.fromarray(gray).save(tmp_path / "scan.jpg", quality=95)

    array = pixels(tmp_path / "scan.jpg")

    assert array.shape == (32, 64, 3)
    assert np.array_equal(array[..., 0], array[..., 2])
    assert np.abs(array[..., 0].astype(int) - gray).max() <= 8


def test_load_image_rgba_drops_alpha(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8), (10, 20, 30, 128)).save(tmp_path / "alpha.png")

    image = load_image(tmp_path / "alpha.png")

    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (10, 20, 30)


def test_load_image_max_side_keeps_aspect(tmp_path: Path) -> None:
    Image.new("RGB", (400, 100)).save(tmp_path / "wide.png")

    image = load_image(tmp_path / "wide.png", max_side=200)

    assert image.size == (200, 50)


def test_load_image_max_side_never_enlarges(tmp_path: Path) -> None:
    Image.new("RGB", (40, 10)).save(tmp_path / "small.png")

    assert load_image(tmp_path / "small.png", max_side=200).size == (40, 10)


# --- DICOM ----------------------------------------------------------------------------


def test_load_image_dicom_radiograph_shape_and_mode(radiograph: pydicom.Dataset) -> None:
    image = load_image(dicom_testfile("RG1_UNCI.dcm"))
    array = np.asarray(image)

    assert image.mode == "RGB"
    assert array.dtype == np.uint8
    assert array.shape == (radiograph.Rows, radiograph.Columns, 3)
    assert np.array_equal(array[..., 0], array[..., 1])
    assert array.std() > 10, "a radiograph should not render as a flat image"


def test_load_image_dicom_applies_window(radiograph: pydicom.Dataset) -> None:
    array = pixels(dicom_testfile("RG1_UNCI.dcm"))[..., 0].astype(np.float64)
    stored = radiograph.pixel_array.astype(np.float64)
    center, width = float(radiograph.WindowCenter), float(radiograph.WindowWidth)

    # MONOCHROME1: the linear window (PS3.3 C.11.2.1.2) is inverted after mapping.
    window = np.clip((stored - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    expected = np.rint((1.0 - window) * 255)

    assert np.abs(array - expected).max() <= 1


def test_load_image_dicom_narrow_window_saturates(
    radiograph: pydicom.Dataset, tmp_path: Path
) -> None:
    stored = radiograph.pixel_array
    center = float(np.median(stored))
    path = save_copy(radiograph, tmp_path / "narrow.dcm", WindowCenter=center, WindowWidth=100)

    array = pixels(path)[..., 0]

    # MONOCHROME1 shows low values white: below the window is 255, above it is 0.
    assert np.all(array[stored < center - 60] == 255)
    assert np.all(array[stored > center + 60] == 0)


def test_load_image_dicom_without_window_uses_min_max(
    radiograph: pydicom.Dataset, tmp_path: Path
) -> None:
    path = save_copy(radiograph, tmp_path / "nowindow.dcm", WindowCenter=None, WindowWidth=None)

    array = pixels(path)

    assert array.min() == 0
    assert array.max() == 255


def test_load_image_dicom_monochrome1_inverts(
    radiograph: pydicom.Dataset, tmp_path: Path
) -> None:
    as_monochrome2 = save_copy(
        radiograph, tmp_path / "mono2.dcm", PhotometricInterpretation="MONOCHROME2"
    )

    monochrome1 = pixels(dicom_testfile("RG1_UNCI.dcm")).astype(int)
    monochrome2 = pixels(as_monochrome2).astype(int)

    assert np.abs(monochrome1 + monochrome2 - 255).max() <= 1
    assert monochrome1.mean() > 127 > monochrome2.mean()


def test_load_image_dicom_applies_rescale(
    radiograph: pydicom.Dataset, tmp_path: Path
) -> None:
    # Stored values x map to 2x - 100; a window moved by the same map must give the same image.
    center, width = float(radiograph.WindowCenter), float(radiograph.WindowWidth)
    plain = save_copy(radiograph, tmp_path / "plain.dcm", VOILUTFunction="LINEAR_EXACT")
    rescaled = save_copy(
        radiograph, tmp_path / "rescaled.dcm", VOILUTFunction="LINEAR_EXACT",
        RescaleSlope=2, RescaleIntercept=-100,
        WindowCenter=2 * center - 100, WindowWidth=2 * width,
    )

    assert np.array_equal(pixels(plain), pixels(rescaled))


def test_load_image_dicom_applies_voi_lut_sequence() -> None:
    dataset = pydicom.dcmread(dicom_testfile("vlut_04.dcm"))
    item = dataset.VOILUTSequence[0]
    lut = np.asarray(item.LUTData, dtype=np.float64)
    first_mapped, output_bits = int(item.LUTDescriptor[1]), int(item.LUTDescriptor[2])
    indices = np.clip(dataset.pixel_array.astype(int) - first_mapped, 0, len(lut) - 1)
    expected = np.rint(lut[indices] / (2**output_bits - 1) * 255)

    array = pixels(dicom_testfile("vlut_04.dcm"))[..., 0]

    assert np.abs(array - expected).max() <= 1


def test_load_image_dicom_multiframe_uses_first_frame(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(dicom_testfile("emri_small.dcm"))
    assert int(dataset.NumberOfFrames) > 1
    first = dataset.pixel_array[0]
    single = copy.deepcopy(dataset)
    single.NumberOfFrames = 1
    single.PixelData = first.tobytes()
    single.save_as(tmp_path / "first_frame.dcm")

    multiframe = pixels(dicom_testfile("emri_small.dcm"))

    assert np.array_equal(multiframe, pixels(tmp_path / "first_frame.dcm"))


def test_load_image_dicom_jpeg2000_matches_uncompressed() -> None:
    uncompressed = pixels(dicom_testfile("RG1_UNCI.dcm"))
    jpeg2000 = pixels(dicom_testfile("RG1_J2KI.dcm"))

    assert jpeg2000.shape == uncompressed.shape
    # RG1_J2KI is lossy JPEG 2000 of the same radiograph.
    assert np.abs(jpeg2000.astype(int) - uncompressed).mean() < 2


def test_load_image_dicom_rgb(tmp_path: Path) -> None:
    image = load_image(dicom_testfile("SC_rgb.dcm"))

    assert image.mode == "RGB"
    assert image.size == (100, 100)
    assert image.getpixel((50, 5)) == (255, 0, 0)


def test_load_image_dicom_detected_without_suffix(tmp_path: Path) -> None:
    renamed = tmp_path / "scan.bin"
    renamed.write_bytes(dicom_testfile("CT_small.dcm").read_bytes())

    assert is_dicom(renamed)
    assert load_image(renamed).mode == "RGB"


def test_apply_window_linear_bounds() -> None:
    # Center 50, width 11: the standard's linear window spans 44.5 to 54.5.
    values = np.array([0.0, 44.5, 50.0, 54.5, 100.0])

    mapped = apply_window(values, center=50, width=11)

    assert np.allclose(mapped, [0.0, 0.0, 0.55, 1.0, 1.0])


def test_apply_window_rejects_unknown_function() -> None:
    with pytest.raises(DataError, match="VOI LUT Function"):
        apply_window(np.zeros(3), center=0, width=10, function="LOG")


# --- bad files ------------------------------------------------------------------------


def test_load_image_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "absent.png")


def test_load_image_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("Findings: no effusion.\n")

    with pytest.raises(DataError, match=r"notes\.png"):
        load_image(path)


def test_load_image_truncated_png(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])

    with pytest.raises(DataError, match=r"cut\.png .*(truncated|corrupt)"):
        load_image(tmp_path / "cut.png")


def test_load_image_invalid_dicom(tmp_path: Path) -> None:
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)

    with pytest.raises(DataError, match=r"broken\.dcm"):
        load_image(path)


def test_load_image_dicom_without_pixel_data() -> None:
    with pytest.raises(DataError, match="no Pixel Data"):
        load_image(dicom_testfile("rtplan.dcm"))


def test_load_image_dicom_missing_decoder_names_package() -> None:
    from pydicom.pixels.decoders.base import get_decoder

    path = dicom_testfile("JPEG-LL.dcm")
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if get_decoder(syntax).is_available:
        pytest.skip("a JPEG Lossless decoder plugin is installed here")

    with pytest.raises(DataError, match=r"JPEG-LL\.dcm.*JPEG Lossless.*pylibjpeg") as caught:
        load_image(path)
    assert "install" in str(caught.value)


def test_load_image_rejects_bad_max_side(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")

    with pytest.raises(ValueError, match="max_side"):
        load_image(tmp_path / "tiny.png", max_side=0)
