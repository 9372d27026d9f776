"""Character splits of Omniglot, each reproducible from a seed, and rotation as new classes.

* ``"maml"``: the 1623-character protocol of MAML, ProtoNets and learn2learn:
  background and evaluation characters pooled and shuffled, 1,100 train,
  100 validation, 423 test (MAML's ``data_generator.py``: ``num_train=1200``
  of which ``num_val=100``; learn2learn's ``omniglot`` benchmark).
* ``"protonet"``: the same pool split 1,200 train / 423 test (Vinyals et al.
  2016, Snell et al. 2017), with no validation characters.
* ``"lake"``: Lake et al.'s split by alphabet: the 30 background alphabets
  (964 characters) for training, the 20 evaluation alphabets (659) for test.

The shuffles use ``numpy.random.default_rng(seed)``; the exact character lists
of the original code bases came from Python's ``random`` over their file
order and are not reproduced, only the protocol (sizes, pooling) is.

Rotation by 0/90/180/270 degrees comes in two forms: :func:`rotate_as_classes`
makes every rotation a new class (x4, ProtoNets and Torchmeta), while the
task sampler's ``rotate=True`` draws one rotation per class per task (MAML's
code and learn2learn).
"""

from typing import NamedTuple

import numpy as np

from jaxmeta.core.types import check_choice
from jaxmeta.data.omniglot.dataset import Omniglot

PROTOCOLS = {"maml": (1100, 100, 423), "protonet": (1200, 0, 423)}


class Split(NamedTuple):
    """Character indices (into ``Omniglot.images``) of each part of a split."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_characters(data: Omniglot, protocol: str = "maml", *, seed: int = 0) -> Split:
    """Split the characters of ``data`` by ``protocol`` (``"maml"``, ``"protonet"`` or ``"lake"``).

    Example:
      >>> import numpy as np
      >>> fake = Omniglot(np.zeros((1623, 20, 1, 1), np.uint8), np.zeros(1623, np.int32),
      ...                 np.r_[np.zeros(964), np.ones(659)].astype(np.int32), ("a",),
      ...                 ("background", "evaluation"), tuple(map(str, range(1623))))
      >>> [len(part) for part in split_characters(fake, "maml", seed=1)]
      [1100, 100, 423]
    """
    if protocol == "lake":
        subsets = list(data.subsets)
        missing = [s for s in ("background", "evaluation") if s not in subsets]
        if missing:
            raise ValueError(f"Lake's split needs the {' and '.join(missing)} archive(s); load them too.")
        train = np.flatnonzero(data.subset == subsets.index("background"))
        test = np.flatnonzero(data.subset == subsets.index("evaluation"))
        return Split(train, np.zeros(0, np.int64), test)
    check_choice(protocol, (*PROTOCOLS, "lake"), "split protocol")
    n_train, n_val, n_test = PROTOCOLS[protocol]
    if data.num_characters != n_train + n_val + n_test:
        raise ValueError(
            f"The {protocol!r} protocol splits all 1623 characters, but the data holds {data.num_characters}; "
            "load both the background and evaluation archives."
        )
    order = np.random.default_rng(seed).permutation(data.num_characters)
    return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]), np.sort(order[n_train + n_val:]))


def rotate_as_classes(images: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Every class rotated by 0, 90, 180 and 270 degrees, each rotation a class of its own.

    ``images`` is ``[classes, examples, H, W]``; the result is ``[4 * classes, examples, H, W]``
    with class ``c`` rotated by ``90 * r`` degrees at index ``r * classes + c``.
    """
    if classes is not None:
        images = images[classes]
    return np.concatenate([np.rot90(images, r, axes=(2, 3)) for r in range(4)])


class LabelledImages(NamedTuple):
    """Images pooled over classes for ordinary classification: ``images`` ``uint8 [n, H, W, 1]``, ``labels``
    ``int32 [n]`` (the class's position in the array the split was made from)."""

    images: np.ndarray
    labels: np.ndarray


class DrawingSplit(NamedTuple):
    """The drawings of every class divided into training, validation and test images."""

    train: LabelledImages
    validation: LabelledImages
    test: LabelledImages


def split_drawings(images: np.ndarray, parts: tuple[int, int, int] = (10, 5, 5), *, seed: int = 0) -> DrawingSplit:
    """Divide each class's drawings among training, validation and test sets (for classification over classes).

    ``images`` is ``[classes, drawings, H, W]`` (e.g. the 964 background characters' 20 drawings); each
    class's drawings are shuffled by ``numpy.random.default_rng(seed)`` and the first ``parts[0]`` go to
    training, the next ``parts[1]`` to validation, the next ``parts[2]`` to test. DARTS-style searches use the
    training and validation halves; the derived network is then scored on the test drawings of the same classes.

    Example:
      >>> split = split_drawings(np.zeros((3, 20, 28, 28), np.uint8), (10, 5, 5))
      >>> split.train.images.shape, split.validation.labels.tolist()[:6]
      ((30, 28, 28, 1), [0, 0, 0, 0, 0, 1])
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [classes, drawings, H, W], got shape {images.shape}.")
    classes, drawings = images.shape[:2]
    if len(parts) != 3 or any(int(p) < 0 for p in parts) or sum(parts) > drawings:
        raise ValueError(f"parts must be three counts >= 0 summing to at most the {drawings} drawings per class, "
                         f"got {parts}.")
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(drawings) for _ in range(classes)])
    bounds = np.cumsum((0, *parts))

    def part(k):
        chosen = order[:, bounds[k]:bounds[k + 1]]
        picked = np.take_along_axis(images, chosen[:, :, None, None], axis=1)
        labels = np.repeat(np.arange(classes, dtype=np.int32), parts[k])
        return LabelledImages(picked.reshape(-1, *images.shape[2:], 1), labels)

    return DrawingSplit(part(0), part(1), part(2))
