"""The training loop: chunking does not change the run, NaN is reported with its step."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import jaxmeta
from jaxmeta.data.sinusoid import SinusoidConfig, sinusoid_tasks
from jaxmeta.models import MLP, functional

model = MLP((8, 1))
loss_fn = jaxmeta.regression_loss(functional(model))


def _setup():
    params = model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
    learner = jaxmeta.maml(loss_fn, inner_lr=0.01)
    optimizer = optax.adam(1e-2)
    return jaxmeta.make_meta_step(learner, optimizer), jaxmeta.init_state(learner, optimizer, params)


def sample(key):
    # one fixed wave, so that the loss must fall within a few dozen steps
    return sinusoid_tasks(key, 4, shots=5, config=SinusoidConfig(amplitude=(2.0, 2.0), phase=(0.0, 0.0)))


@pytest.mark.long
def test_chunking_does_not_change_the_run_and_loss_falls():
    step, state = _setup()
    a = jaxmeta.fit(step, state, sample, key=jax.random.key(1), num_steps=60, steps_per_call=60, progress=False)
    b = jaxmeta.fit(step, state, sample, key=jax.random.key(1), num_steps=60, steps_per_call=25, progress=False)
    c = jaxmeta.fit(step, state, sample, key=jax.random.key(1), num_steps=60, steps_per_call=25, progress=False,
                    presample=False)
    chex.assert_trees_all_close(a.state.meta_params, b.state.meta_params, rtol=1e-6)
    chex.assert_trees_all_close(b.state.meta_params, c.state.meta_params, rtol=1e-6)
    assert a.history["loss"].shape == (60,) and int(a.state.step) == 60
    assert a.history["loss"][-10:].mean() < 0.7 * a.history["loss"][:10].mean()


def test_nan_meta_loss_is_reported_with_its_step():
    step, state = _setup()
    good = sample(jax.random.key(5))
    bad = good._replace(query=(good.query[0], good.query[1].at[0, 0, 0].set(jnp.nan)))
    batches = iter([good, good, good, bad, good])
    with pytest.raises(jaxmeta.NonFiniteLossError, match="meta-step 4") as info:
        jaxmeta.fit(step, state, batches, key=jax.random.key(1), num_steps=5, progress=False)
    assert info.value.step == 4 and int(info.value.state.step) == 3
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(info.value.state.meta_params))


def test_iterator_that_runs_out_is_an_error():
    step, state = _setup()
    with pytest.raises(ValueError, match="ran out after 2 meta-steps"):
        jaxmeta.fit(step, state, iter([sample(jax.random.key(0))] * 2), key=jax.random.key(1),
                    num_steps=3, progress=False)


def test_pytree_sampler_enters_the_compiled_loop_as_an_argument():
    """An EpisodeSampler (a pytree holding the images) trains a classifier through fit."""
    from jaxmeta.data.episodes import EpisodeSampler

    images = (jax.random.uniform(jax.random.key(0), (6, 20, 4, 4)) * 255).astype(jnp.uint8)
    sampler = EpisodeSampler.create(images, 3, ways=2, shots=1, queries=2)
    loss_fn = jaxmeta.classification_loss(lambda w, x: x.reshape(x.shape[0], -1) @ w)
    learner = jaxmeta.maml(loss_fn, inner_lr=0.5)
    optimizer = optax.adam(1e-2)
    state = jaxmeta.init_state(learner, optimizer, jnp.zeros((16, 2)))
    result = jaxmeta.fit(jaxmeta.make_meta_step(learner, optimizer), state, sampler, key=jax.random.key(1),
                         num_steps=4, steps_per_call=2, progress=False, presample=False)
    assert int(result.state.step) == 4 and set(result.history) == {"loss", "support_loss", "accuracy"}


def test_later_calls_with_the_same_step_and_sampler_reuse_the_compiled_chunk():
    """Training in several ``fit`` calls (e.g. between plots) compiles the chunk once."""
    step, state = _setup()
    traces = []

    def counting_sample(key):
        traces.append(1)  # runs only while the chunk is being traced
        return sample(key)

    first = jaxmeta.fit(step, state, counting_sample, key=jax.random.key(1), num_steps=10, steps_per_call=10,
                        progress=False)
    second = jaxmeta.fit(step, first.state, counting_sample, key=jax.random.key(1), num_steps=10,
                         steps_per_call=10, progress=False)
    whole = jaxmeta.fit(step, state, counting_sample, key=jax.random.key(1), num_steps=20, steps_per_call=10,
                        progress=False)
    assert len(traces) == 2  # the chunk once, plus jax.eval_shape's look at the task sizes in the first call
    chex.assert_trees_all_close(second.state.meta_params, whole.state.meta_params, rtol=1e-6)
