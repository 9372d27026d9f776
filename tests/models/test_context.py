"""Context networks: the context enters as an input (MLP) or through FiLM (conv-4), and wrong sizes are refused."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.models import MLP, Conv4, ContextConv4, ContextMLP, ContextParams, functional_with_context


def test_the_context_mlp_is_an_mlp_on_the_input_with_the_context_appended():
    model = ContextMLP(features=(8, 1), context_size=3)
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros(3))["params"]
    x, context = jax.random.normal(jax.random.key(1), (5, 2)), jnp.array([0.5, -1.0, 2.0])
    plain = MLP((8, 1)).apply({"params": params}, jnp.concatenate([x, jnp.tile(context, (5, 1))], axis=1))
    chex.assert_trees_all_close(functional_with_context(model)(ContextParams(params, context), x), plain)


def test_film_with_a_zero_context_is_the_plain_conv4_and_a_context_changes_the_output():
    model = ContextConv4(num_classes=3, features=8, context_size=4)
    images = jax.random.uniform(jax.random.key(2), (6, 28, 28, 1))
    params = model.init(jax.random.key(0), images[:1], jnp.zeros(4))["params"]
    assert params["film"]["kernel"].shape == (4, 16) and not np.any(params["film"]["bias"])
    conv4 = {name: value for name, value in params.items() if name != "film"}
    expected = Conv4(num_classes=3, features=8).apply({"params": conv4}, images)
    chex.assert_trees_all_close(model.apply({"params": params}, images, jnp.zeros(4)), expected, rtol=1e-6)
    # FiLM after block 2 with gamma = 1 + W c, beta: the same as scaling and shifting block 2's normalised output
    moved = model.apply({"params": params}, images, jnp.ones(4))
    assert not np.allclose(moved, expected)


def test_wrong_context_sizes_and_blocks_are_refused_with_the_fix():
    model = ContextMLP(features=(4, 1), context_size=5)
    with pytest.raises(ValueError, match=r"built for a context vector of 5 entries, got shape \(2,\)"):
        model.init(jax.random.key(0), jnp.zeros((1, 1)), jnp.zeros(2))
    with pytest.raises(ValueError, match=r"film_block must name one of the 4 blocks \(0 to 3\), got 4"):
        ContextConv4(num_classes=2, features=4, context_size=2, film_block=4).init(
            jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jnp.zeros(2))
