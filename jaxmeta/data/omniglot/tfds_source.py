"""Omniglot through TensorFlow Datasets: TFDS's ``omniglot`` read back as the archives' characters.

TFDS builds its ``omniglot`` data set (version 3.0.0) from the same four
official archives, one split each: ``train`` (images_background), ``test``
(images_evaluation), ``small1`` and ``small2``. An example holds the PNG file's
bytes (``image``), the alphabet (``alphabet``, an index into the sorted
alphabet names), the character's number in its alphabet (``alphabet_char_id``,
``NN - 1`` for ``characterNN``) and the character's number in the release
(``label``, ``NNNN - 1`` for the files ``NNNN_MM.png``), but not the drawer
``MM``, which orders the 20 drawings of a character in the archives.

TFDS writes a split's examples sorted by the MD5 hash of their key,
``<Alphabet>_<alphabet_char_id>_<NNNN_MM.png>``, salted with the split's name
(``tensorflow_datasets/core/hashing.py``: the order is part of a data set's
version). :func:`read_split` recovers each drawing's file name from that
order, checks the recovered order against the whole split, and returns the
characters exactly as :func:`jaxmeta.data.omniglot.archives.read_archive`
does (same names, order and PNG bytes), so that
:func:`jaxmeta.data.omniglot.load_omniglot` preprocesses both sources with
the same code and gives the same arrays.

Preparing the TFDS data (the first call, online) needs TensorFlow, because
TFDS downloads, extracts and lists the archives through ``tf.io.gfile``;
reading prepared data does not (it is stored as ``array_record`` and read
through a TFDS data source). ``pip install 'jaxmeta[tfds]'`` installs both.

Example:
  >>> TFDS_SPLITS["evaluation"]
  'test'
  >>> example_key("Korean", 3, 707, 5)
  'Korean_3_0708_05.png'
  >>> builder = prepare()  # downloads and prepares ~/tensorflow_datasets/omniglot  # doctest: +SKIP
  >>> [c.name for c in read_split(builder, "evaluation")[:2]]  # doctest: +SKIP
  ['character01', 'character02']
"""

import contextlib
import hashlib
import re
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from jaxmeta.core.types import check_choice
from jaxmeta.data.omniglot.archives import DRAWINGS_PER_CHARACTER, EXPECTED_CHARACTERS, Character

TFDS_NAME = "omniglot:3.0.0"
"""The TFDS data set and version read (the order recovery relies on this version's example keys)."""

TFDS_SPLITS = {
    "background": "train",
    "evaluation": "test",
    "background_small1": "small1",
    "background_small2": "small2",
}
"""Subset name (as in :data:`ARCHIVES`) -> TFDS split."""

INSTALL_HINT = "pip install 'jaxmeta[tfds]'"


def import_tfds():
    """The ``tensorflow_datasets`` module, or an ImportError that names the fix."""
    try:
        import tensorflow_datasets
    except ImportError as error:
        raise ImportError(
            f"source='tfds' needs TensorFlow Datasets, an optional extra of jaxmeta: {INSTALL_HINT} "
            f"(or use source='archives' with the official zip files). ({error})"
        ) from error
    return tensorflow_datasets


def prepare(data_dir: Path | None = None):
    """The TFDS ``omniglot`` builder, its data downloaded and prepared in ``data_dir`` if not there yet.

    Args:
      data_dir: TFDS's data folder; default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.

    Returns:
      The ``tfds.core.DatasetBuilder``, ready for :func:`read_split`.

    The data is prepared in the ``array_record`` format (random access,
    readable without TensorFlow) from the official archives, never fetched
    pre-built from TFDS's bucket. A folder that holds the data in another
    format (``tfrecord``, what ``tfds.load`` writes) is refused with a
    ValueError: choose another ``data_dir``.

    Raises:
      ImportError: TFDS, or a module it needs (TensorFlow to prepare), is missing.
      OSError: the download failed (the first call needs internet access).
    """
    tfds = import_tfds()
    where = data_dir if data_dir is not None else "TFDS's default data folder"
    with _missing_modules_named(f"preparing the TFDS omniglot data in {where}"):
        try:
            builder = tfds.builder(TFDS_NAME, data_dir=None if data_dir is None else str(data_dir),
                                   file_format="array_record")
        except ValueError as error:
            if "format" not in str(error):
                raise
            raise ValueError(
                f"{where} holds TFDS omniglot data in another file format ({error}). jaxmeta reads TFDS's "
                "array_record format (random access, no TensorFlow needed): pass another data_dir=, or "
                "delete the prepared omniglot folder there."
            ) from error
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        except OSError as error:  # includes requests' connection errors
            raise OSError(
                f"TFDS could not download or prepare omniglot in {builder.data_dir} ({error}). The first "
                "call needs internet access (TFDS fetches the archives from github.com/brendenlake/omniglot); "
                "offline, use source='archives' with the archives in $JAXMETA_DATA/omniglot."
            ) from error
    return builder


def fingerprint(builder, subset: str) -> str:
    """SHA-256 of the prepared TFDS files of ``subset`` (their names and bytes)."""
    digest = hashlib.sha256(builder.info.full_name.encode())
    for path in sorted(builder.info.splits[_split(subset)].filepaths, key=str):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_split(builder, subset: str) -> list[Character]:
    """Every character of ``subset`` from prepared TFDS data, as :func:`read_archive` gives them.

    Raises:
      ValueError: if the data is not the official release in TFDS's order
        (missing drawings, inconsistent labels, an unknown example order).
    """
    tfds = import_tfds()
    split = _split(subset)
    with _missing_modules_named("reading the TFDS omniglot data"):
        source = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
        examples = source.__getitems__(range(len(source)))
    features = builder.info.features
    return characters_from_examples(
        examples, subset, features["alphabet"].names, features["label"].names,
        where=f"The TFDS omniglot split {split!r} in {builder.data_dir}",
    )


def characters_from_examples(
    examples: Sequence[Mapping[str, Any]],
    subset: str,
    alphabet_names: Sequence[str],
    label_names: Sequence[str],
    *,
    where: str = "The TFDS omniglot data",
) -> list[Character]:
    """Group a split's examples (in TFDS's stored order) into characters, checked.

    Each example holds ``image`` (PNG bytes), ``alphabet``, ``alphabet_char_id``
    and ``label``. The drawer of each drawing is recovered from the stored
    order (see the module's doc): among the 20 keys a character can have, the
    one with the ``k``-th smallest hash belongs to its ``k``-th stored
    drawing; the hashes of all the keys so assigned must then increase along
    the whole split, which nothing but the right assignment achieves.
    """
    split = _split(subset)
    groups: dict[tuple[str, int], list[int]] = {}
    for index, example in enumerate(examples):
        image = example["image"]
        if not isinstance(image, bytes):
            raise ValueError(f"{where}: example {index} holds a decoded image ({type(image).__name__}), "
                             "not the PNG file's bytes; read it with decoders={'image': tfds.decode.SkipDecoding()}.")
        character = (alphabet_names[int(example["alphabet"])], int(example["alphabet_char_id"]))
        groups.setdefault(character, []).append(index)

    short = [f"{a}/character{c + 1:02d} ({len(i)})" for (a, c), i in groups.items() if len(i) != DRAWINGS_PER_CHARACTER]
    if short:
        raise ValueError(
            f"{where} is incomplete: {len(short)} characters do not have {DRAWINGS_PER_CHARACTER} drawings, "
            f"e.g. {short[:3]}. Prepare it again in an empty data_dir."
        )
    if len(groups) != EXPECTED_CHARACTERS[subset]:
        raise ValueError(
            f"{where} holds {len(groups)} characters, the official {subset} set has "
            f"{EXPECTED_CHARACTERS[subset]}. Prepare it again in an empty data_dir."
        )

    hashes = [0] * len(examples)
    characters = []
    for (alphabet, char_id), indices in groups.items():
        labels = sorted({int(examples[i]["label"]) for i in indices})
        if len(labels) != 1 or label_names[labels[0]] != f"{alphabet}_{char_id}":
            raise ValueError(
                f"{where}: the drawings of {alphabet}/character{char_id + 1:02d} carry the labels "
                f"{[label_names[label] for label in labels]}, not the single label {alphabet}_{char_id}. "
                "Prepare it again in an empty data_dir."
            )
        keys = sorted((_hash(split, example_key(alphabet, char_id, labels[0], drawer)), drawer)
                      for drawer in range(1, DRAWINGS_PER_CHARACTER + 1))
        drawers = {}
        for index, (key_hash, drawer) in zip(indices, keys):
            hashes[index] = key_hash
            drawers[drawer] = examples[index]["image"]
        characters.append(Character(alphabet, f"character{char_id + 1:02d}",
                                    tuple(drawers[d] for d in sorted(drawers))))
    if any(a >= b for a, b in zip(hashes, hashes[1:])):
        raise ValueError(
            f"{where} is not stored in the order TFDS {TFDS_NAME} writes (examples sorted by the hash "
            "of their key), so the drawings' order cannot be recovered; was it prepared with "
            "nondeterministic_order, or by another TFDS? Prepare it again in an empty data_dir."
        )
    return sorted(characters, key=lambda c: (c.alphabet, c.name))


def example_key(alphabet: str, alphabet_char_id: int, label: int, drawer: int) -> str:
    """The key of a drawing in TFDS's omniglot: ``<Alphabet>_<alphabet_char_id>_<NNNN_MM.png>``.

    ``NNNN = label + 1`` and ``MM = drawer`` (1 to 20) make the file's name in
    the archive.
    """
    return f"{alphabet}_{alphabet_char_id}_{label + 1:04d}_{drawer:02d}.png"


def _hash(split: str, key: str) -> int:
    """The 128-bit number TFDS sorts a split's examples by: MD5 of the split's name, then the key."""
    return int(hashlib.md5(split.encode() + key.encode()).hexdigest(), 16)


def _split(subset: str) -> str:
    return TFDS_SPLITS[check_choice(subset, TFDS_SPLITS, "Omniglot subset")]


@contextlib.contextmanager
def _missing_modules_named(doing: str):
    """Turns a missing module anywhere in an error's chain (TFDS wraps them) into an ImportError with the fix."""
    try:
        yield
    except Exception as error:
        missing: BaseException | None = error
        seen: set[int] = set()
        while missing is not None and not isinstance(missing, ModuleNotFoundError) and id(missing) not in seen:
            seen.add(id(missing))
            missing = missing.__cause__ or missing.__context__
        if not isinstance(missing, ModuleNotFoundError):
            raise
        named = re.search(r"No module named '([^']+)'", str(missing))
        name = missing.name or (named[1] if named else "a module")
        raise ImportError(
            f"{doing[0].upper()}{doing[1:]} needs the Python module {name!r}, which is not installed: "
            f"{INSTALL_HINT}. ({missing})"
        ) from error
