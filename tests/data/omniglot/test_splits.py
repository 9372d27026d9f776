"""The split protocols (sizes, disjointness, coverage, reproducibility), rotation as classes, drawing splits."""

import numpy as np
import pytest

from jaxmeta.data.omniglot import rotate_as_classes, split_characters, split_drawings


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


def test_split_drawings_gives_every_class_disjoint_drawings_in_each_part():
    classes, drawings = 4, 20
    images = np.arange(classes * drawings, dtype=np.int64).reshape(classes, drawings, 1, 1) * np.ones((1, 1, 2, 2), int)
    split = split_drawings(images, (10, 6, 4), seed=3)
    seen = set()
    for part, count in zip(split, (10, 6, 4)):
        assert part.images.shape == (classes * count, 2, 2, 1)
        ids = part.images[:, 0, 0, 0]
        np.testing.assert_array_equal(ids // drawings, part.labels)  # each image is one of its class's drawings
        assert not seen & set(ids.tolist())
        seen |= set(ids.tolist())
    assert len(seen) == classes * drawings
    again = split_drawings(images, (10, 6, 4), seed=3)
    np.testing.assert_array_equal(again.train.images, split.train.images)
    assert not np.array_equal(split_drawings(images, (10, 6, 4), seed=4).train.images, split.train.images)


def test_split_drawings_refuses_more_drawings_than_there_are():
    with pytest.raises(ValueError, match="at most the 20 drawings"):
        split_drawings(np.zeros((2, 20, 1, 1)), (10, 6, 5))
