"""The split protocols: sizes, disjointness, coverage, reproducibility; rotation as classes."""

import numpy as np
import pytest

from jaxmeta.data.omniglot import rotate_as_classes, split_characters


@pytest.mark.parametrize("protocol, sizes", [("maml", (1100, 100, 423)), ("protonet", (1200, 0, 423)),
                                             ("lake", (964, 0, 659))])
def test_split_sizes_disjoint_and_covering(omniglot, protocol, sizes):
    split = split_characters(omniglot, protocol, seed=3)
    assert tuple(len(part) for part in split) == sizes
    everything = np.concatenate(split)
    assert len(np.unique(everything)) == 1623 == len(everything)


def test_seeded_splits_are_reproducible_and_differ_across_seeds(omniglot):
    a, b, c = (split_characters(omniglot, "maml", seed=s) for s in (0, 0, 1))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.train, c.train)


def test_lake_split_separates_alphabets(omniglot):
    split = split_characters(omniglot, "lake")
    train_alphabets = set(omniglot.alphabet[split.train])
    test_alphabets = set(omniglot.alphabet[split.test])
    assert len(train_alphabets) == 30 and len(test_alphabets) == 20 and not train_alphabets & test_alphabets


def test_protocols_need_the_whole_release(omniglot_root):
    from jaxmeta.data.omniglot import load_omniglot

    small = load_omniglot(omniglot_root, subsets=("background_small1",), cache=False)
    with pytest.raises(ValueError, match="splits all 1623 characters, but the data holds 136"):
        split_characters(small, "maml")
    with pytest.raises(ValueError, match="needs the background and evaluation archive"):
        split_characters(small, "lake")
    with pytest.raises(ValueError, match="Unknown split protocol 'vinyals'"):
        split_characters(small, "vinyals")


def test_rotation_as_new_classes():
    images = np.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    rotated = rotate_as_classes(images)
    assert rotated.shape == (8, 3, 4, 4)
    np.testing.assert_array_equal(rotated[:2], images)
    np.testing.assert_array_equal(rotated[2 + 1, 0], np.rot90(images[1, 0]))
    np.testing.assert_array_equal(rotated[6 + 0, 2], np.rot90(images[0, 2], 3))
