"""Tests of jaxmeta.core.types: the example count every data-taking function checks its sets with, and the check
of a named choice."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.core.types import check_choice, example_count


def test_the_leading_axis_shared_by_the_leaves_is_the_count():
    batch = {"x": np.zeros((7, 3)), "y": jnp.zeros((7,)), "scale": 2.0}  # a scalar leaf has no example axis
    assert example_count(batch) == 7


def test_an_empty_set_is_refused_by_name():
    with pytest.raises(ValueError, match=r"The validation set is empty \(leaf \['x'\] has shape \(0, 3\)\)"):
        example_count({"x": np.zeros((0, 3)), "y": np.zeros((0,))}, "validation")


def test_leaves_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"share one leading \(example\) axis, got sizes \[4, 5\]"):
        example_count((np.zeros((5, 2)), np.zeros(4)))


def test_a_batch_without_arrays_is_refused():
    with pytest.raises(ValueError, match="no arrays with an example axis"):
        example_count((1.0, None))


def test_a_known_choice_is_returned_and_an_unknown_one_is_refused_with_the_list_and_the_hint():
    assert check_choice("lvc", ("naive", "dice", "lvc"), "estimator") == "lvc"
    assert check_choice("train", {"train": 0, "test": 1}, "split") == "train"  # any collection: a dict's keys
    with pytest.raises(ValueError, match=r"^Unknown split 'val': choose one of train, test\.$"):
        check_choice("val", {"train": 0, "test": 1}, "split")
    with pytest.raises(ValueError, match=r"^Unknown estimator 'x': choose one of naive, dice\. 'dice' is unbiased\.$"):
        check_choice("x", ("naive", "dice"), "estimator", hint="'dice' is unbiased.")
