"""The digits and their corruptions: split sizes, disjointness and balance; label noise of the exact fraction."""

import numpy as np
import pytest

from jaxmeta.data.digits import flip_labels, imbalanced_pair, load_digits, noisy_split


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_are_scaled_to_the_unit_interval(digits):
    assert digits.images.shape == (1797, 64) and digits.images.dtype == np.float32
    assert digits.images.min() == 0.0 and digits.images.max() == 1.0


@pytest.mark.parametrize("ratio, minority", [(0.9, 15), (0.995, 1)])
def test_imbalanced_pair_counts_balance_and_disjointness(digits, ratio, minority):
    split = imbalanced_pair(digits, ratio=ratio, train_size=150, seed=2)
    assert np.bincount(split.train.labels, minlength=2).tolist() == [150 - minority, minority]
    assert np.bincount(split.validation.labels).tolist() == [5, 5]
    assert np.bincount(split.test.labels).tolist() == [20, 20]
    rows = [bytes(row) for part in split for row in part.images]
    assert len(set(rows)) == len(rows)  # no image in two places (the digits themselves are distinct)
    lookup = {bytes(row): label for row, label in zip(digits.images, digits.labels)}
    for part in split:
        digit = np.array([lookup[bytes(row)] for row in part.images])
        np.testing.assert_array_equal(digit, np.where(part.labels == 0, 4, 9))


def test_imbalanced_pair_refuses_more_images_than_a_digit_has(digits):
    with pytest.raises(ValueError, match="Digit 4 has"):
        imbalanced_pair(digits, ratio=0.99, train_size=400)
    with pytest.raises(ValueError, match="ratio"):
        imbalanced_pair(digits, ratio=1.0, train_size=100)


def test_flip_labels_changes_exactly_the_fraction_to_other_classes():
    labels = np.arange(500) % 10
    noisy = flip_labels(labels, 0.4, 10, seed=1)
    assert int(np.sum(noisy != labels)) == 200
    assert noisy.min() >= 0 and noisy.max() <= 9
    counts = np.bincount((noisy - labels)[noisy != labels] % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 5  # every other class is reachable
    with pytest.raises(ValueError, match="fraction"):
        flip_labels(labels, 1.5, 10)


def test_noisy_split_keeps_validation_and_test_clean_and_flips_only_training_labels(digits):
    split = noisy_split(digits, fraction=0.4, clean_per_class=10, test_size=300, seed=3)
    assert np.bincount(split.validation.labels).tolist() == [10] * 10
    assert len(split.test.labels) == 300 and len(split.train.labels) == 1797 - 100 - 300
    lookup = {bytes(row): label for row, label in zip(digits.images, digits.labels)}
    rows = [bytes(row) for part in split for row in part.images]
    assert len(set(rows)) == len(rows)  # disjoint
    for part in (split.validation, split.test):
        np.testing.assert_array_equal([lookup[bytes(row)] for row in part.images], part.labels)
    true = np.array([lookup[bytes(row)] for row in split.train.images])
    assert int(np.sum(true != split.train.labels)) == round(0.4 * len(true))
    with pytest.raises(ValueError, match="clean_per_class"):
        noisy_split(digits, fraction=0.4, clean_per_class=0, test_size=300)
    with pytest.raises(ValueError, match="test_size"):
        noisy_split(digits, fraction=0.4, clean_per_class=1, test_size=1787)
