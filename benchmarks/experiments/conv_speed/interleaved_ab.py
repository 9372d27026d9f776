"""Variants of the im2col convolution timed in one process, their steps interleaved round by round.

``interleaved_ab.py B WAYS SHOTS Q STEPS LR ROUNDS VARIANT...`` where a variant is ``off`` (the
library's ``conv3x3_im2col``) or ``FILE.py:FUNCTION`` (a replacement with the same signature, taken
from a file beside this one); a suffix ``#N`` compiles another copy of the same variant.
Each variant's MAML meta step (conv-4, ``task_chunk=1``) is compiled
once; then every round times one step of each, so that the host's drift (+-10-20% between processes
on the shared 2-core machine) falls on all of them alike. Prints the median tasks/s, every round's,
and a fingerprint of each compiled program (to show the variants differ).
"""
import hashlib
import importlib.util
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmeta
import jaxmeta.models.conv as conv
from jaxmeta.models import Conv4, functional

library_im2col = conv.conv3x3_im2col


def load(variant):
    variant = variant.split("#")[0]  # "off#2": a second copy, compiled on its own
    if variant == "off":
        return library_im2col
    file, function = variant.split(":")
    spec = importlib.util.spec_from_file_location(Path(file).stem, Path(__file__).with_name(file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    conv.conv3x3_im2col = library_im2col  # a module may wrap the library's function at import
    return getattr(module, function)


def main():
    B, ways, shots, q, steps, lr, rounds = [float(a) if "." in a else int(a) for a in sys.argv[1:8]]
    variants = sys.argv[8:]
    model = Conv4(num_classes=ways, conv="im2col")
    learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=lr, inner_steps=steps)
    optimizer = optax.adam(1e-3)
    state = jaxmeta.init_state(learner, optimizer, model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"])
    key = jax.random.key(1)
    images = lambda n: jax.random.randint(key, (B, n, 28, 28, 1), 0, 255).astype(jnp.uint8)  # noqa: E731
    labels = lambda per_class: jnp.tile(jnp.arange(ways), (B, per_class))  # noqa: E731
    tasks = jaxmeta.Task((images(ways * shots), labels(shots)), (images(ways * q), labels(q)))
    compiled = {}
    for variant in variants:
        conv.conv3x3_im2col = load(variant)
        compiled[variant] = jaxmeta.make_meta_step(learner, optimizer, task_chunk=1).lower(state, tasks, key).compile()
        jax.block_until_ready(compiled[variant](state, tasks, key))
    conv.conv3x3_im2col = library_im2col
    times = {variant: [] for variant in variants}
    for _ in range(rounds):
        for variant, step in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(step(state, tasks, key))
            times[variant].append(time.perf_counter() - start)
    for variant, step in compiled.items():
        text = step.as_text()
        print(f"{variant:40s} median {B / np.median(times[variant]):.2f} tasks/s; rounds: "
              + " ".join(f"{B / t:.1f}" for t in times[variant])
              + f"; program {hashlib.md5(text.encode()).hexdigest()[:8]}, {len(text)} chars")


if __name__ == "__main__":
    main()
