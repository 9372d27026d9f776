"""A short meta-training run of an episode model (metric learner, MetaNet) on Omniglot, shared by tests."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmeta
from jaxmeta.data.episodes import EpisodeSampler, classification_tasks
from jaxmeta.data.omniglot import split_characters
from jaxmeta.metric import metric_learner


def accuracy_before_and_after_training(model, omniglot, *, steps: int, meta_batch: int, lr: float = 3e-3):
    """Mean 5-way 1-shot accuracy of ``model`` on 100 held-out tasks before and after ``steps`` meta steps."""
    split = split_characters(omniglot, "maml")
    train, test = (np.asarray(omniglot.images[s]) for s in (split.train, split.test))
    sizes = dict(ways=5, shots=1, queries=5, rotate=True, dtype="uint8")
    probe = classification_tasks(jax.random.key(0), jnp.asarray(test), 100, **sizes)
    first = jax.tree.map(lambda x: x[0], probe)
    params = jax.tree.map(lambda x: x.astype(jnp.float32), model.init(
        jax.random.key(1), first.support[0], first.support[1], first.query[0])["params"])
    learner, optimizer = metric_learner(model), optax.adam(lr)
    state = jaxmeta.init_state(learner, optimizer, params)
    sampler = EpisodeSampler.create(train, meta_batch, **sizes)
    accuracy = lambda params: float(jaxmeta.evaluate(learner, params, probe, key=jax.random.key(3))  # noqa: E731
                                    .metrics["accuracy"].mean())
    before = accuracy(state.meta_params)
    state, _ = jaxmeta.fit(jaxmeta.make_meta_step(learner, optimizer, jit=False), state, sampler,
                           key=jax.random.key(2), num_steps=steps, steps_per_call=50, progress=False)
    return before, accuracy(state.meta_params)
