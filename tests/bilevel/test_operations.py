"""DARTS's candidate operations: a mixed operation with one-hot weights is the chosen operation, every
operation keeps (stride 1) or halves (stride 2) the resolution, and bad names are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.bilevel.operations import OPERATIONS, CandidateOperation, MixedOperation, Pool, check_operations

X = jax.random.normal(jax.random.key(0), (2, 7, 7, 4))


@pytest.mark.parametrize("stride", [1, 2])
def test_one_hot_weights_give_the_chosen_operation(stride):
    mixed = MixedOperation(features=4, stride=stride)
    params = mixed.init(jax.random.key(1), X, jnp.ones(len(OPERATIONS)))["params"]
    size = 7 if stride == 1 else 4
    for k, name in enumerate(OPERATIONS):
        out = mixed.apply({"params": params}, X, jnp.eye(len(OPERATIONS))[k])
        single = CandidateOperation(name, 4, stride)
        variables = {"params": params[name]} if name in params else {}
        np.testing.assert_allclose(out, single.apply(variables, X), rtol=1e-12, atol=1e-12, err_msg=name)
        assert out.shape == (2, size, size, 4), name
        if name != "none":
            assert float(jnp.abs(out).max()) > 0, name


def test_the_mixture_is_the_weighted_sum():
    mixed = MixedOperation(features=4, stride=1, operations=("skip_connect", "avg_pool_3x3"))
    params = mixed.init(jax.random.key(1), X, jnp.ones(2))
    pooled = CandidateOperation("avg_pool_3x3", 4).apply({}, X)
    np.testing.assert_allclose(mixed.apply(params, X, jnp.array([0.25, 0.75])), 0.25 * X + 0.75 * pooled, rtol=1e-12)


def test_average_pooling_counts_only_pixels_inside_the_image():
    np.testing.assert_allclose(Pool("avg").apply({}, jnp.ones((1, 5, 5, 2))), 1.0)


def test_bad_operations_and_weights_are_refused():
    with pytest.raises(ValueError, match="Unknown operation"):
        check_operations(["conv_7x7"])
    with pytest.raises(ValueError, match="Unknown operation"):
        CandidateOperation("conv_7x7", 4).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="weights of shape"):
        MixedOperation(features=4, stride=1).init(jax.random.key(0), X, jnp.ones(3))
