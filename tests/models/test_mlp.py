"""The Flax MLP used by the sinusoid benchmark."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.models import MLP, functional


def test_maml_sinusoid_network_shapes_and_parameter_count():
    model = MLP((40, 40, 1))
    params = model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
    assert sum(p.size for p in jax.tree.leaves(params)) == (1 * 40 + 40) + (40 * 40 + 40) + (40 + 1)
    out = functional(model)(params, jnp.linspace(-5, 5, 13).reshape(13, 1))
    assert out.shape == (13, 1)


def test_functional_apply_is_the_modules_forward_pass():
    model = MLP((3, 2), activation=jax.nn.relu)
    params = model.init(jax.random.key(1), jnp.zeros((1, 4)))["params"]
    x = np.random.default_rng(0).normal(size=(5, 4))
    hidden = np.maximum(x @ np.asarray(params["Dense_0"]["kernel"]) + np.asarray(params["Dense_0"]["bias"]), 0)
    expected = hidden @ np.asarray(params["Dense_1"]["kernel"]) + np.asarray(params["Dense_1"]["bias"])
    np.testing.assert_allclose(functional(model)(params, x), expected, rtol=1e-5, atol=1e-6)
