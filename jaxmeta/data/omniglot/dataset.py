"""The Omniglot data set as arrays, preprocessed as in the common protocol and cached.

Preprocessing (MAML, ProtoNets, learn2learn): each 105x105 drawing is
resized to 28x28 with an antialiasing (area-averaging, PIL ``BOX``) filter
and inverted, so that ink is 1 and background 0; the result is stored as
``uint8`` (ink fraction x 255) and turned into ``float32`` on the device.

The arrays are cached in ``$JAXMETA_CACHE`` as a compressed ``.npz`` whose
name carries a key made of the format version, the source (``archives``
or ``tfds``), the preprocessing and the SHA-256 of every archive (or TFDS
file) used; a cache whose stored key, shapes or contents do not check out is
rebuilt, never trusted.
"""

import functools
import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

from jaxmeta.data.omniglot.archives import archive_path, read_archive
from jaxmeta.data.paths import cache_root, data_root

CACHE_VERSION = 1
IMAGE_SIZE = 28


class Omniglot(NamedTuple):
    """Omniglot characters as arrays.

    Attributes:
      images: ``uint8 [characters, 20, size, size]``, ink fraction x 255 (ink = 255).
      alphabet: ``int32 [characters]``, index into ``alphabets``.
      subset: ``int32 [characters]``, index into ``subsets`` (e.g. background, evaluation).
      alphabets: alphabet names (``"<subset>/<Alphabet>"``).
      subsets: the subsets loaded, in order.
      names: ``"<subset>/<Alphabet>/characterNN"`` for every character.
    """

    images: np.ndarray
    alphabet: np.ndarray
    subset: np.ndarray
    alphabets: tuple[str, ...]
    subsets: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def num_characters(self) -> int:
        return self.images.shape[0]


def preprocess(png: bytes, size: int = IMAGE_SIZE) -> np.ndarray:
    """One drawing: decode, area-average to ``size`` x ``size``, invert; ``uint8`` with ink = 255."""
    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L").resize((size, size), Image.Resampling.BOX)
    return 255 - np.asarray(grey, dtype=np.uint8)


def load_omniglot(
    root: Path | None = None,
    *,
    subsets: Sequence[str] = ("background", "evaluation"),
    size: int = IMAGE_SIZE,
    cache: bool = True,
    cache_dir: Path | None = None,
    source: str = "archives",
    data_dir: Path | None = None,
) -> Omniglot:
    """Load Omniglot from the official archives (zip files or folders) or TFDS, through the cache.

    Both sources give the same :class:`Omniglot`: same characters in the same
    order, same names and alphabets, same drawings in the same order, same
    preprocessing (see ``jaxmeta.data.omniglot.tfds_source``).

    Args:
      root: the folder holding the archives; default ``$JAXMETA_DATA/omniglot``
        (``source="archives"`` only).
      subsets: which archives, among ``background``, ``evaluation``,
        ``background_small1``, ``background_small2`` (TFDS's splits ``train``,
        ``test``, ``small1``, ``small2``).
      size: the side of the resized images.
      cache: read and write the preprocessed arrays in the cache.
      cache_dir: default ``$JAXMETA_CACHE``.
      source: ``"archives"``, the official zip files in ``root``, or
        ``"tfds"``, TensorFlow Datasets' ``omniglot``, downloaded and prepared
        by TFDS on first use (an optional extra: ``pip install 'jaxmeta[tfds]'``).
        The cache keeps the two apart.
      data_dir: TFDS's data folder (``source="tfds"`` only); default
        ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.

    Returns:
      An :class:`Omniglot` with the characters of the subsets, in order.

    Example:
      >>> data = load_omniglot()  # doctest: +SKIP
      >>> data.images.shape  # doctest: +SKIP
      (1623, 20, 28, 28)
      >>> online = load_omniglot(source="tfds")  # needs internet the first time  # doctest: +SKIP
      >>> bool((online.images == data.images).all()) and online.names == data.names  # doctest: +SKIP
      True
    """
    subsets = tuple(subsets)
    if source == "archives":
        if data_dir is not None:
            raise ValueError("data_dir= is TFDS's data folder, for source='tfds'; the archives are found in root=.")
        root = Path(root) if root is not None else data_root() / "omniglot"
        paths = [archive_path(root, subset) for subset in subsets]
        key = _cache_key([_fingerprint(path) for path in paths], subsets, size, source)
        readers = [functools.partial(read_archive, path, subset) for path, subset in zip(paths, subsets)]
    elif source == "tfds":
        if root is not None:
            raise ValueError("root= is the archives' folder, for source='archives'; TFDS's folder is data_dir=.")
        from jaxmeta.data.omniglot import tfds_source

        builder = tfds_source.prepare(data_dir)
        fingerprints = [tfds_source.fingerprint(builder, subset) for subset in subsets]
        key = _cache_key(fingerprints, subsets, size, source)
        readers = [functools.partial(tfds_source.read_split, builder, subset) for subset in subsets]
    else:
        raise ValueError(f"Unknown Omniglot source {source!r}; choose 'archives' or 'tfds'.")
    cache_file = Path(cache_dir or cache_root()) / f"omniglot-{key[:16]}.npz"
    if cache and cache_file.exists():
        data = _read_cache(cache_file, key)
        if data is not None:
            return data
    data = _build(readers, subsets, size)
    if cache:
        _write_cache(cache_file, key, data)
    return data


def _build(readers, subsets, size) -> Omniglot:
    """The arrays of the characters that ``readers`` (one per subset) give, in order."""
    images: list[np.ndarray] = []
    alphabet: list[int] = []
    subset_index: list[int] = []
    alphabets: list[str] = []
    names: list[str] = []
    for s, (read, subset) in enumerate(zip(readers, subsets)):
        for character in read():
            full = f"{subset}/{character.alphabet}"
            if not alphabets or alphabets[-1] != full:
                alphabets.append(full)
            images.append(np.stack([preprocess(png, size) for png in character.drawings]))
            alphabet.append(len(alphabets) - 1)
            subset_index.append(s)
            names.append(f"{full}/{character.name}")
    return Omniglot(np.stack(images), np.asarray(alphabet, np.int32), np.asarray(subset_index, np.int32),
                    tuple(alphabets), tuple(subsets), tuple(names))


def _cache_key(fingerprints, subsets, size, source) -> str:
    """The key of the cached arrays: format, source, preprocessing, subsets and the data's fingerprints."""
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "source": source, "size": size,
                                        "filter": "box", "subsets": list(subsets)}).encode())
    for fingerprint in fingerprints:
        digest.update(fingerprint.encode())
    return digest.hexdigest()


def _fingerprint(path: Path) -> str:
    """SHA-256 of an archive's bytes, or of a folder's file names and contents."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode())
            digest.update(file.read_bytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _content_hash(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def _read_cache(path: Path, key: str) -> Omniglot | None:
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            images = stored["images"]
            data = Omniglot(images, stored["alphabet"], stored["subset"], tuple(meta["alphabets"]),
                            tuple(meta["subsets"]), tuple(meta["names"]))
        if meta["key"] != key or meta["images_sha256"] != _content_hash(images) or len(data.names) != len(images):
            raise ValueError("the stored key or contents do not match")
        return data
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as error:
        warnings.warn(f"Rebuilding the Omniglot cache {path}: it is stale or damaged ({error}).", stacklevel=3)
        return None


def _write_cache(path: Path, key: str, data: Omniglot) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "alphabets": data.alphabets, "subsets": data.subsets, "names": data.names,
            "images_sha256": _content_hash(data.images)}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as handle:
        np.savez_compressed(handle, images=data.images, alphabet=data.alphabet, subset=data.subset,
                            meta=np.asarray(json.dumps(meta)))
    os.replace(handle.name, path)
