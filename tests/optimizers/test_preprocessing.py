"""The gradient preprocessing of Andrychowicz et al. 2016 against its formula."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.optimizers import preprocess_gradient


def test_both_branches_against_the_formula():
    g = np.array([3.0, -0.2, 1e-3, -1e-3, 4e-5, -1e-9, 0.0])
    p = 10.0
    expected = np.array([[np.log(abs(x)) / p, np.sign(x)] if abs(x) >= np.exp(-p) else [-1.0, np.exp(p) * x]
                         for x in g])
    np.testing.assert_allclose(preprocess_gradient(jnp.asarray(g)), expected, rtol=1e-12)


def test_the_first_feature_is_continuous_at_the_threshold_and_gradients_are_finite():
    edge = np.exp(-10.0)
    below, above = preprocess_gradient(jnp.array([edge * (1 - 1e-9), edge * (1 + 1e-9)]))
    np.testing.assert_allclose(below[0], above[0], atol=1e-8)
    grads = jax.grad(lambda g: preprocess_gradient(g).sum())(jnp.array([0.0, 1e-9, 2.0]))
    assert np.all(np.isfinite(grads))
    assert preprocess_gradient(jnp.zeros((2, 3))).shape == (2, 3, 2)
