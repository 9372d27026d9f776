"""Central finite differences over a parameter pytree, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def finite_difference_grad(f, params, eps: float = 1e-6):
    """``d f / d params`` by central differences, as a pytree like ``params``."""
    flat, unravel = ravel_pytree(params)
    assert flat.dtype == jnp.float64, "finite differences need float64 parameters"
    f_flat = jax.jit(lambda v: f(unravel(v)))
    grads = np.zeros(flat.shape, np.float64)
    for i in range(flat.size):
        step = jnp.zeros_like(flat).at[i].set(eps)
        grads[i] = (f_flat(flat + step) - f_flat(flat - step)) / (2 * eps)
    return unravel(jnp.asarray(grads))


def tiny_mlp(key, sizes=(2, 6, 1)):
    """Float64 parameters and a smooth (tanh) apply function of a small MLP."""
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        kw, kb = jax.random.split(k)
        params.append({"w": jax.random.normal(kw, (n_in, n_out), jnp.float64) / np.sqrt(n_in),
                       "b": 0.1 * jax.random.normal(kb, (n_out,), jnp.float64)})

    def apply(params, x):
        for i, layer in enumerate(params):
            x = x @ layer["w"] + layer["b"]
            if i < len(params) - 1:
                x = jnp.tanh(x)
        return x

    return params, apply


def regression_task(key, n_support=5, n_query=7, dim=2):
    """A random float64 regression task (support, query) with a non-linear target."""
    from jaxmeta import Task

    k1, k2, k3 = jax.random.split(key, 3)
    w = jax.random.normal(k3, (dim, 1), jnp.float64)

    def examples(k, n):
        x = jax.random.normal(k, (n, dim), jnp.float64)
        return x, jnp.sin(x @ w)

    return Task(examples(k1, n_support), examples(k2, n_query))


def directional_derivatives(f, params, key, *, directions: int = 3, eps: float = 1e-6):
    """``(autodiff, finite differences)`` of ``f`` along random unit directions in parameter space, float64.

    Cheaper than :func:`finite_difference_grad` for models with many parameters:
    ``grad f . v`` against ``(f(p + eps v) - f(p - eps v)) / 2 eps`` for a few ``v``.
    """
    flat, unravel = ravel_pytree(params)
    assert flat.dtype == jnp.float64, "finite differences need float64 parameters"
    f_flat = jax.jit(lambda v: f(unravel(v)))
    grad = jax.jit(jax.grad(f_flat))(flat)  # compiled: op by op, a second-order model's gradient runs for minutes
    autodiff, numeric = [], []
    for k in jax.random.split(key, directions):
        v = jax.random.normal(k, flat.shape, jnp.float64)
        v = v / jnp.linalg.norm(v)
        autodiff.append(float(grad @ v))
        numeric.append(float((f_flat(flat + eps * v) - f_flat(flat - eps * v)) / (2 * eps)))
    return np.array(autodiff), np.array(numeric)


def adapted_query_loss(learner, loss_fn, task, key=None):
    """``meta_params -> L^q(learner.adapt(meta_params, support).params)``: the meta-loss whose gradient ``task_grad``
    computes, for finite differences (the inner loop keyed by ``key``, default ``jax.random.key(0)``)."""
    key = jax.random.key(0) if key is None else key

    def meta_loss(meta_params):
        phi = learner.adapt(meta_params, task.support, key=key).params
        return loss_fn(phi, task.query, key=None)[0]

    return meta_loss
