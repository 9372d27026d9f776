"""The Taylor expansions of Nichol et al. (2018) relating MAML, FOMAML and Reptile (notebook 01, as a unit test).

With one inner step on batch A, phi = theta - alpha g_A, and B the query batch:

    g_MAML    = g_B - alpha H_B g_A - alpha H_A g_B + O(alpha^2)
    g_FOMAML  = g_B - alpha H_B g_A + O(alpha^2)
    g_Reptile = (theta - phi_2) / alpha = g_A + g_B - alpha H_B g_A + O(alpha^2)   (steps on A, then B)

so each residual shrinks as alpha^2 (slope 2 on a log-log plot); the network is smooth (tanh), where
the expansions hold for every alpha.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxmeta
from jaxmeta.models import MLP, functional


@pytest.mark.long  # about 10 s of compiling on 2 cores
def test_the_meta_gradients_follow_their_expansions_to_second_order_in_the_inner_rate():
    model = MLP((16, 16, 1), activation=jnp.tanh)
    loss_fn = jaxmeta.regression_loss(functional(model))
    theta = model.init(jax.random.key(0), jnp.zeros((1, 1), jnp.float64))["params"]
    task = jax.tree.map(lambda x: x[0], jaxmeta.sinusoid_tasks(jax.random.key(7), 1, shots=10))
    A, B, key = task.support, task.query, jax.random.key(0)
    flat = lambda tree: ravel_pytree(tree)[0]  # noqa: E731
    grad_at = lambda batch, p: jax.grad(lambda q: loss_fn(q, batch, key=key)[0])(p)  # noqa: E731
    hvp = lambda batch, v: jax.jvp(lambda q: grad_at(batch, q), (theta,), (v,))[1]  # noqa: E731
    gA, gB = flat(grad_at(A, theta)), flat(grad_at(B, theta))
    HB_gA, HA_gB = flat(hvp(B, grad_at(A, theta))), flat(hvp(A, grad_at(B, theta)))

    def residuals(alpha):
        maml_g = flat(jaxmeta.maml(loss_fn, inner_lr=alpha).task_grad(theta, task, key)[0])
        fomaml_g = flat(jaxmeta.fomaml(loss_fn, inner_lr=alpha).task_grad(theta, task, key)[0])
        phi1, _ = jaxmeta.gradient_step(loss_fn, theta, A, lr=alpha, key=key)
        phi2, _ = jaxmeta.gradient_step(loss_fn, phi1, B, lr=alpha, key=key)
        reptile_g = (flat(theta) - flat(phi2)) / alpha
        return [np.linalg.norm(maml_g - (gB - alpha * HB_gA - alpha * HA_gB)),
                np.linalg.norm(fomaml_g - (gB - alpha * HB_gA)),
                np.linalg.norm(reptile_g - (gA + gB - alpha * HB_gA))]

    alphas = [1e-2 / 2**i for i in range(4)]
    errors = np.array([residuals(alpha) for alpha in alphas])  # [alphas, (MAML, FOMAML, Reptile)]
    slopes = np.polyfit(np.log(alphas), np.log(errors), 1)[0]
    np.testing.assert_allclose(slopes, 2.0, atol=0.2)
    # The first-order term FOMAML drops is MAML's -alpha H_A g_B.
    difference = (flat(jaxmeta.maml(loss_fn, inner_lr=1e-4).task_grad(theta, task, key)[0])
                  - flat(jaxmeta.fomaml(loss_fn, inner_lr=1e-4).task_grad(theta, task, key)[0]))
    assert np.linalg.norm(difference + 1e-4 * HA_gB) < 1e-3 * np.linalg.norm(difference)
