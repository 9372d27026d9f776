"""scikit-learn's bundled 8x8 digits, and the two corruptions of Ren et al.'s reweighting experiments.

Ren, Zeng, Yang and Urtasun (ICML 2018) test learned example weights on a
class-imbalanced pair of MNIST digits (4 and 9, the majority's share up to
0.995) and on uniform label noise. Here, in small form, on the 1,797 digits
scikit-learn ships with (about 180 per class, no download):

* :func:`imbalanced_pair`: a binary problem with ``ratio`` of the training
  images from one digit, and small balanced clean validation and test sets;
* :func:`flip_labels`: a fraction of the labels replaced by another class,
  uniformly; :func:`noisy_split` uses it for a ten-class training set with
  noisy labels beside clean validation and test sets.

scikit-learn is imported only by :func:`load_digits` (``pip install scikit-learn``; it is in the ``dev``
extra).
"""

from typing import NamedTuple

import numpy as np


class Examples(NamedTuple):
    """Flattened images ``float32 [n, 64]`` in [0, 1] and integer ``labels`` ``[n]``."""

    images: np.ndarray
    labels: np.ndarray


def load_digits() -> Examples:
    """All 1,797 digits, pixels scaled from 0..16 to [0, 1].

    Example:
      >>> digits = load_digits()
      >>> digits.images.shape, int(digits.labels.max())
      ((1797, 64), 9)
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError("The digits come with scikit-learn: pip install scikit-learn (or jaxmeta's dev extra, "
                          "pip install -e '.[dev]').") from error
    data = sklearn_digits()
    return Examples((data.data / 16.0).astype(np.float32), data.target.astype(np.int32))


class Split(NamedTuple):
    """Training, validation and test sets (disjoint)."""

    train: Examples
    validation: Examples
    test: Examples


def imbalanced_pair(data: Examples, *, majority: int = 4, minority: int = 9, ratio: float, train_size: int,
                    validation_per_class: int = 5, test_per_class: int = 20, seed: int = 0) -> Split:
    r"""A binary split with ``ratio`` of the ``train_size`` training images from the ``majority`` digit.

    The minority class gets :math:`\max(1, \operatorname{round}((1 - r) n))` training
    images. Validation (Ren et al.: 10 clean images) and test sets are
    balanced and disjoint from training. Labels: 0 for ``majority``, 1 for ``minority`` (the minority).

    Example:
      >>> split = imbalanced_pair(load_digits(), ratio=0.9, train_size=100)
      >>> np.bincount(split.train.labels).tolist(), np.bincount(split.validation.labels).tolist()
      ([90, 10], [5, 5])
    """
    if not 0.5 <= ratio < 1:
        raise ValueError(f"ratio is the majority's share of the training set, in [0.5, 1); got {ratio}.")
    minority_count = max(1, int(round((1 - ratio) * train_size)))
    counts = {majority: train_size - minority_count, minority: minority_count}
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {"train": [], "validation": [], "test": []}
    for label, digit in ((0, majority), (1, minority)):
        index = rng.permutation(np.flatnonzero(data.labels == digit))
        needed = counts[digit] + validation_per_class + test_per_class
        if needed > len(index):
            raise ValueError(f"Digit {digit} has {len(index)} images; the split needs {needed} ({counts[digit]} "
                             f"training, {validation_per_class} validation, {test_per_class} test). Use a smaller "
                             "train_size.")
        bounds = np.cumsum([0, counts[digit], validation_per_class, test_per_class])
        for k, name in enumerate(parts):
            chosen = index[bounds[k]:bounds[k + 1]]
            parts[name].append((data.images[chosen], np.full(len(chosen), label, np.int32)))
    return Split(*(Examples(np.concatenate([x for x, _ in p]), np.concatenate([y for _, y in p]))
                             for p in parts.values()))


def flip_labels(labels: np.ndarray, fraction: float, num_classes: int, *, seed: int = 0) -> np.ndarray:
    """Replace a ``fraction`` of the labels (chosen at random) by a different class drawn uniformly.

    Example:
      >>> noisy = flip_labels(np.zeros(1000, np.int32), 0.4, 10)
      >>> float(np.mean(noisy != 0)), bool(np.all(noisy < 10))
      (0.4, True)
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
    labels = np.asarray(labels).copy()
    rng = np.random.default_rng(seed)
    flipped = rng.permutation(len(labels))[:int(round(fraction * len(labels)))]
    labels[flipped] = (labels[flipped] + rng.integers(1, num_classes, len(flipped))) % num_classes
    return labels


def noisy_split(data: Examples, *, fraction: float, clean_per_class: int, test_size: int, seed: int = 0) -> Split:
    """All classes, with a ``fraction`` of the training labels flipped (:func:`flip_labels`); clean validation
    (``clean_per_class`` images of each class) and test (``test_size`` images drawn at random) sets; the rest
    trains.

    Example:
      >>> split = noisy_split(load_digits(), fraction=0.4, clean_per_class=1, test_size=500)
      >>> len(split.train.labels), np.bincount(split.validation.labels).tolist()
      (1287, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    """
    num_classes = int(data.labels.max()) + 1
    smallest = int(np.bincount(data.labels, minlength=num_classes).min())
    if not 1 <= clean_per_class < smallest:
        raise ValueError(f"clean_per_class must be in [1, {smallest}) (the smallest class has {smallest} images), "
                         f"got {clean_per_class}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.labels))
    clean = np.concatenate([order[data.labels[order] == k][:clean_per_class] for k in range(num_classes)])
    rest = rng.permutation(np.setdiff1d(order, clean))
    if not 1 <= test_size < len(rest):
        raise ValueError(f"test_size must leave training images: in [1, {len(rest)}), got {test_size}.")
    test, train = rest[:test_size], rest[test_size:]
    noisy = flip_labels(data.labels[train], fraction, num_classes, seed=seed)
    return Split(Examples(data.images[train], noisy), Examples(data.images[clean], data.labels[clean]),
                 Examples(data.images[test], data.labels[test]))
