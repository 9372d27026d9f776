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
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown split protocol {protocol!r}; choose from maml, protonet, lake.")
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
