"""The DARTS search on a tiny network: batches from the two halves, steps run by jaxmeta.fit, and the
finite-difference hypergradient against the exact one-step hypergradient on a real network (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta import fit
from jaxmeta.bilevel import DartsNetwork, finite_difference, first_order, unrolled
from jaxmeta.bilevel.search import (SplitBatches, classification_problem, compare_hypergradients, init_search,
                                    make_search_step)

NETWORK = DartsNetwork(num_classes=3, features=2, layers=3, nodes=1,
                       operations=("none", "skip_connect", "avg_pool_3x3", "sep_conv_3x3"))


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 8, 8, 1), dtype=np.uint8)
    labels = rng.integers(0, 3, 30).astype(np.int32)
    return SplitBatches.create((images[:20], labels[:20]), (images[20:], labels[20:]), batch_size=6)


def test_batches_come_from_their_own_half(source):
    (x, y), (vx, vy) = source(jax.random.key(1))
    assert x.shape == vx.shape == (6, 8, 8, 1)
    train_rows = {bytes(np.asarray(r)) for r in source.train.images}
    assert all(bytes(np.asarray(r)) in train_rows for r in x)
    assert not any(bytes(np.asarray(r)) in train_rows for r in vx)


def test_an_empty_validation_half_is_refused():
    with pytest.raises(ValueError, match="validation half set is empty"):
        SplitBatches.create((np.zeros((4, 8, 8, 1)), np.zeros(4)), (np.zeros((0, 8, 8, 1)), np.zeros(0)), batch_size=2)


@pytest.mark.long
def test_search_steps_run_under_fit_and_move_both_variables(source):
    steps = 3
    state = init_search(NETWORK, source.train.images[:2], jax.random.key(0), steps=steps)
    step = make_search_step(NETWORK, finite_difference(classification_problem(NETWORK), lr=0.025), steps=steps)
    result = fit(step, state, source, key=jax.random.key(2), num_steps=steps, steps_per_call=steps, progress=False)
    assert int(result.state.step) == steps
    assert np.all(np.isfinite(result.history["loss"])) and np.all(np.isfinite(result.history["val_loss"]))
    for part in ("outer", "inner"):
        moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), result.state.meta_params[part],
                             state.meta_params[part])
        assert max(jax.tree.leaves(moved)) > 0, part


@pytest.mark.long
def test_the_finite_difference_tends_to_the_exact_one_step_hypergradient_on_a_network(source):
    """On a ReLU network the gradient in alpha has kinks in w, so the difference needs a small radius to be
    exact; DARTS's 0.01 / ||v|| crosses kinks here (the benchmark measures how much that costs on a real search)."""
    state = init_search(NETWORK, source.train.images[:2], jax.random.key(0), steps=1)
    state = state._replace(meta_params={"outer": state.meta_params["outer"],
                                        "inner": jax.tree.map(lambda x: x.astype(jnp.float64),
                                                              state.meta_params["inner"])})
    problem = classification_problem(NETWORK)
    methods = {"exact": unrolled(problem, steps=1, lr=0.5),  # compiled, as the benchmark does: op by op is slower
               "finite-difference": finite_difference(problem, lr=0.5, epsilon=1e-6),
               "first-order": first_order(problem)}
    methods = {name: jax.jit(method) for name, method in methods.items()}
    out = compare_hypergradients(methods, "exact", state, source(jax.random.key(3)), jax.random.key(4))
    assert float(out["cosine/exact"]) == pytest.approx(1.0)
    assert float(out["cosine/finite-difference"]) == pytest.approx(1.0, abs=1e-8)
    assert float(out["norm/finite-difference"]) == pytest.approx(float(out["norm/exact"]), rel=1e-6)
    assert float(out["cosine/first-order"]) < 0.99  # the second-order term matters at this step size
    with pytest.raises(ValueError, match="reference"):
        compare_hypergradients(methods, "implicit", state, source(jax.random.key(3)), jax.random.key(4))
