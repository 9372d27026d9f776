"""Read the official Omniglot archives in place (zip files or their extracted folders).

The release (Lake, Salakhutdinov and Tenenbaum, 2015) ships
``images_background.zip`` (30 alphabets, 964 characters) and
``images_evaluation.zip`` (20 alphabets, 659 characters), plus two small
background subsets. Inside each: ``<archive>/<Alphabet>/characterNN/NNNN_MM.png``,
105x105 one-bit PNGs (white background), 20 drawings per character.
"""

import re
import zipfile
from pathlib import Path
from typing import NamedTuple

from jaxmeta.core.types import check_choice

ARCHIVES = {
    "background": "images_background",
    "evaluation": "images_evaluation",
    "background_small1": "images_background_small1",
    "background_small2": "images_background_small2",
}
"""Subset name -> archive stem (``<stem>.zip`` or the folder ``<stem>/``)."""

EXPECTED_CHARACTERS = {"background": 964, "evaluation": 659, "background_small1": 136, "background_small2": 156}
DRAWINGS_PER_CHARACTER = 20
_ENTRY = re.compile(r"^(?P<stem>[^/]+)/(?P<alphabet>[^/]+)/(?P<character>character\d+)/(?P<file>[^/]+\.png)$")


class Character(NamedTuple):
    """One character: its alphabet, its name and the PNG bytes of its drawings (sorted by file name)."""

    alphabet: str
    name: str
    drawings: tuple[bytes, ...]


def archive_path(root: Path, subset: str) -> Path:
    """The zip file of ``subset`` under ``root``, or its extracted folder; a clear error if neither exists."""
    check_choice(subset, ARCHIVES, "Omniglot subset")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"The Omniglot folder {root} does not exist. Point JAXMETA_DATA at the folder that holds "
            "omniglot/ (default ../shared/data), or pass root= to the loader."
        )
    stem = ARCHIVES[subset]
    for candidate in (root / f"{stem}.zip", root / stem):
        if candidate.exists():
            return candidate
    present = sorted(p.name for p in root.iterdir())
    raise FileNotFoundError(
        f"Omniglot archive {stem}.zip (or folder {stem}/) is missing from {root}; found {present}. "
        "Put the official archives there (images_background.zip, images_evaluation.zip, ...) or point "
        "JAXMETA_DATA at the folder that holds omniglot/."
    )


def read_archive(path: Path, subset: str) -> list[Character]:
    """Every character of one archive, in alphabet and character order, checked for completeness."""
    path = Path(path)
    stem = ARCHIVES[subset]
    files: dict[tuple[str, str], dict[str, bytes]] = {}
    if path.is_dir():
        entries = [(p.relative_to(path.parent).as_posix(), p) for p in sorted(path.rglob("*")) if p.is_file()]
        for name, file in entries:
            _add(files, name, stem, path, lambda f=file: f.read_bytes())
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        _add(files, info.filename, stem, path, lambda i=info: archive.read(i))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as error:
            if isinstance(error, ValueError) and "layout" in str(error):
                raise
            raise ValueError(
                f"The Omniglot archive {path} is damaged or not a zip file ({error}). Replace it with "
                "the official file (see the README beside the data)."
            ) from error
    characters = [Character(a, c, tuple(d[k] for k in sorted(d))) for (a, c), d in sorted(files.items())]
    _check_counts(characters, subset, path)
    return characters


def _add(files, name, stem, path, read):
    if name.split("/")[-1].startswith(".") or "__MACOSX" in name:
        return
    match = _ENTRY.match(name)
    if match is None or match["stem"] != stem:
        raise ValueError(
            f"{path} has a foreign layout: entry {name!r} is not {stem}/<Alphabet>/characterNN/<file>.png. "
            "Use the official Omniglot archives, unmodified."
        )
    files.setdefault((match["alphabet"], match["character"]), {})[match["file"]] = read()


def _check_counts(characters: list[Character], subset: str, path: Path) -> None:
    short = [f"{c.alphabet}/{c.name} ({len(c.drawings)})" for c in characters
             if len(c.drawings) != DRAWINGS_PER_CHARACTER]
    if short:
        raise ValueError(
            f"{path} is incomplete: {len(short)} characters do not have {DRAWINGS_PER_CHARACTER} drawings, "
            f"e.g. {short[:3]}. Replace the archive with the official file."
        )
    expected = EXPECTED_CHARACTERS[subset]
    if len(characters) != expected:
        raise ValueError(
            f"{path} holds {len(characters)} characters, the official {subset} set has {expected}. "
            "Replace the archive with the official file."
        )
