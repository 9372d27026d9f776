"""Pooling before the batch-norm affine map and the ReLU: the same function on a quarter of the elements.

Per channel, batch norm is ``a x + b`` with ``a = scale / sqrt(var + eps)``
and ``b = bias - a mean``; with ``s = sign(a)``,

    maxpool(relu(a x + b)) = relu(|a| maxpool(s x) + b),

because ``relu(. + b)`` and multiplication by ``|a| >= 0`` are non-decreasing.
The statistics still come from the unpooled ``x``; only the affine map and the
ReLU (and their derivatives) move to the pooled tensor. The first maximal
element of ``s x`` is the first maximal element of ``a x + b``, so the pooling
derivative picks the same element.

Usage (repository root, quiet machine): ``python benchmarks/experiments/conv_speed/pool_first.py B WAYS Q STEPS [REPS]``
prints, for the library's block and the pool-first block alternately, the
meta-step time of second-order MAML (im2col, task_chunk=1) and the largest
relative difference of the meta-gradients (float32).
"""

import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmeta
from jaxmeta.models import conv as conv_module
from jaxmeta.models import Conv4, functional

LIBRARY_BLOCK = conv_module.ConvBlock


class NormParams(nn.Module):
    """The parameters of TaskBatchNorm (same names and shapes), returned instead of applied."""

    @nn.compact
    def __call__(self, channels):
        return (self.param("scale", nn.initializers.ones, (channels,)),
                self.param("bias", nn.initializers.zeros, (channels,)))


class PoolFirstBlock(nn.Module):
    features: int = 64
    activation: object = nn.relu
    conv: str = "xla"
    pool: bool = True

    @nn.compact
    def __call__(self, x):
        x = conv_module.Conv3x3(self.features, self.conv, name="conv")(x)
        scale, bias = NormParams(name="norm")(x.shape[-1])
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        variance = jnp.mean(jnp.square(x - mean), axis=axes)
        a = scale * jax.lax.rsqrt(variance + 1e-5)
        b = bias - a * mean
        if not self.pool:
            return nn.relu(x * a + b)
        s = jax.lax.stop_gradient(jnp.where(a < 0, -1.0, 1.0).astype(x.dtype))
        return nn.relu(conv_module.max_pool_2x2(x * s) * (a * s) + b)


def main():
    B, ways, q, steps = (int(a) for a in sys.argv[1:5])
    reps = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    lr = 0.4 if ways == 5 else 0.1
    opt = optax.adam(1e-3)
    k = jax.random.key(1)
    xs = jax.random.randint(k, (B, ways, 28, 28, 1), 0, 255).astype(jnp.uint8)
    xq = jax.random.randint(jax.random.key(2), (B, ways * q, 28, 28, 1), 0, 255).astype(jnp.uint8)
    tasks = jaxmeta.Task((xs, jnp.tile(jnp.arange(ways), (B, 1))), (xq, jnp.tile(jnp.arange(ways), (B, q))))
    compiled, grads = {}, {}
    for name, block in (("library", LIBRARY_BLOCK), ("pool-first", PoolFirstBlock)):
        conv_module.ConvBlock = block  # looked up when the model is traced: patched until compiled
        model = Conv4(num_classes=ways, conv="im2col")
        learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=lr, inner_steps=steps)
        params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
        state = jaxmeta.init_state(learner, opt, params)
        step = jaxmeta.make_meta_step(learner, opt, task_chunk=1)
        t0 = time.perf_counter()
        compiled[name] = (step.lower(state, tasks, k).compile(), state)
        print(f"{name}: compile {time.perf_counter() - t0:.1f} s", flush=True)
        grads[name] = jax.jit(lambda p: jaxmeta.meta_gradient(learner, p, tasks, k, task_chunk=1)[0])(params)
        conv_module.ConvBlock = LIBRARY_BLOCK
    diff = max(float(jnp.max(jnp.abs(g - h)) / (jnp.max(jnp.abs(h)) + 1e-30))
               for g, h in zip(jax.tree.leaves(grads["pool-first"]), jax.tree.leaves(grads["library"])))
    print(f"largest relative meta-gradient difference per leaf: {diff:.2e}", flush=True)
    times = {name: [] for name in compiled}
    for name, (fn, state) in compiled.items():
        jax.block_until_ready(fn(state, tasks, k))
    for _ in range(reps):
        for name, (fn, state) in compiled.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(state, tasks, k))
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"{name}: {np.median(ts):.3f} s/step, {B / np.median(ts):.2f} tasks/s ({ways}-way, q={q}, B={B}, "
              f"{steps} steps)", flush=True)
    print(f"speed-up: {np.median(times['library']) / np.median(times['pool-first']):.3f}")


if __name__ == "__main__":
    main()
