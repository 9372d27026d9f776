"""Loading the official archives: counts, pixels, the cache, and every kind of bad input."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxmeta.data.omniglot import load_omniglot
from jaxmeta.data.omniglot.archives import read_archive
from jaxmeta.data.omniglot.dataset import preprocess


def test_counts_of_the_official_release(omniglot):
    background = omniglot.subset == omniglot.subsets.index("background")
    assert omniglot.images.shape == (1623, 20, 28, 28) and omniglot.images.dtype == np.uint8
    assert background.sum() == 964 and (~background).sum() == 659
    assert 20 * background.sum() == 19_280 and 20 * (~background).sum() == 13_180
    assert len({a for a in omniglot.alphabets if a.startswith("background/")}) == 30
    assert len({a for a in omniglot.alphabets if a.startswith("evaluation/")}) == 20
    assert len(set(omniglot.names)) == 1623


def test_pixel_statistics(omniglot):
    ink = omniglot.images.astype(np.float64) / 255
    assert 0.05 < ink.mean() < 0.15  # strokes cover a small part of the page
    assert ink[:, :, 0, :].mean() < 0.02 and ink[:, :, :, 0].mean() < 0.02  # borders are background
    per_image = ink.reshape(len(ink) * 20, -1).max(1)
    assert per_image.min() > 0.5  # every drawing has ink


def test_preprocessing_inverts_and_preserves_ink_area(omniglot_root):
    character = read_archive(omniglot_root / "images_background_small1.zip", "background_small1")[0]
    png = character.drawings[0]
    original = 1 - np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float64) / 255
    small = preprocess(png) / 255
    assert small.shape == (28, 28)
    assert abs(small.mean() - original.mean()) < 0.01  # area averaging keeps the ink fraction
    white = io.BytesIO()
    Image.new("1", (105, 105), 1).save(white, format="PNG")
    assert preprocess(white.getvalue()).max() == 0  # background maps to 0


def test_folder_and_zip_give_the_same_arrays(omniglot_root, tmp_path):
    with zipfile.ZipFile(omniglot_root / "images_background_small1.zip") as archive:
        archive.extractall(tmp_path)
    from_zip = load_omniglot(omniglot_root, subsets=("background_small1",), cache=False)
    from_folder = load_omniglot(tmp_path, subsets=("background_small1",), cache=False)
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    assert from_zip.names == from_folder.names and from_zip.images.shape[0] == 136


def test_cache_is_reused_and_a_damaged_or_stale_cache_is_rebuilt(omniglot_root, tmp_path):
    first = load_omniglot(omniglot_root, subsets=("background_small2",), cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("omniglot-*.npz")
    again = load_omniglot(omniglot_root, subsets=("background_small2",), cache_dir=tmp_path)
    np.testing.assert_array_equal(first.images, again.images)

    cache_file.write_bytes(cache_file.read_bytes()[:1000])  # truncated: damaged
    with pytest.warns(UserWarning, match="stale or damaged"):
        rebuilt = load_omniglot(omniglot_root, subsets=("background_small2",), cache_dir=tmp_path)
    np.testing.assert_array_equal(first.images, rebuilt.images)

    with np.load(cache_file) as stored:  # same key in the name, tampered contents: stale
        arrays = dict(stored)
    arrays["images"] = arrays["images"].copy()
    arrays["images"][0, 0, 0, 0] ^= 1
    np.savez_compressed(cache_file, **arrays)
    with pytest.warns(UserWarning, match="stale or damaged"):
        rebuilt = load_omniglot(omniglot_root, subsets=("background_small2",), cache_dir=tmp_path)
    np.testing.assert_array_equal(first.images, rebuilt.images)


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_wrong_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist\. Point JAXMETA_DATA"):
        load_omniglot(tmp_path / "nowhere")


def test_missing_archive(tmp_path, omniglot_root):
    (tmp_path / "images_background.zip").write_bytes((omniglot_root / "images_background.zip").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"images_evaluation\.zip \(or folder images_evaluation/\) is missing"):
        load_omniglot(tmp_path, cache=False)


def test_corrupt_archive(tmp_path):
    (tmp_path / "images_background_small1.zip").write_bytes(b"this is not a zip file" * 100)
    with pytest.raises(ValueError, match="images_background_small1.zip is damaged or not a zip file"):
        load_omniglot(tmp_path, subsets=("background_small1",), cache=False)


def test_foreign_layout(tmp_path):
    _zip(tmp_path / "images_background_small1.zip", {"pictures/cat.png": b"x"})
    with pytest.raises(ValueError, match=r"foreign layout: entry 'pictures/cat.png'"):
        load_omniglot(tmp_path, subsets=("background_small1",), cache=False)


def test_partial_archive_is_refused(tmp_path):
    drawing = io.BytesIO()
    Image.new("1", (105, 105), 1).save(drawing, format="PNG")
    stem = "images_background_small1/Alpha/character01/"
    _zip(tmp_path / "images_background_small1.zip", {f"{stem}{i:04d}_01.png": drawing.getvalue() for i in range(19)})
    with pytest.raises(ValueError, match=r"incomplete: 1 characters do not have 20 drawings"):
        load_omniglot(tmp_path, subsets=("background_small1",), cache=False)
    _zip(tmp_path / "images_background_small1.zip", {f"{stem}{i:04d}_01.png": drawing.getvalue() for i in range(20)})
    with pytest.raises(ValueError, match=r"holds 1 characters, the official background_small1 set has 136"):
        load_omniglot(tmp_path, subsets=("background_small1",), cache=False)


def test_the_test_run_caches_in_a_folder_of_its_own_not_the_users():
    import os
    import tempfile

    from jaxmeta.data.paths import cache_root

    assert cache_root() == Path(os.environ["JAXMETA_TEST_CACHE"])
    assert cache_root().is_dir() and cache_root().is_relative_to(tempfile.gettempdir())
    assert not cache_root().is_relative_to(Path("~/.cache").expanduser())
