"""The sharded meta step equals the single-device one, for gradient-based and metric learners."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.distributed import make_sharded_meta_step, replicate, shard_tasks, task_mesh
from jaxmeta.metric import PrototypicalNetwork, metric_learner
from jaxmeta.models import MLP, functional

MLP_MODEL = MLP((16, 16, 1))
REGRESSION = jaxmeta.regression_loss(functional(MLP_MODEL))
PROTONET = PrototypicalNetwork(MLP((8, 5)), ways=3)


def float64(tree):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def sinusoid_batch(size):
    return float64(jaxmeta.sinusoid_tasks(jax.random.key(1), size, shots=5))


def prototype_batch(size, rng=np.random.default_rng(0)):
    support = (rng.normal(size=(size, 6, 6)), np.tile(np.repeat(np.arange(3), 2), (size, 1)))
    query = (rng.normal(size=(size, 4, 6)), rng.integers(0, 3, (size, 4)))
    return jaxmeta.Task(support, query)


LEARNERS = {
    "maml": (lambda: jaxmeta.maml(REGRESSION, inner_lr=0.01, inner_steps=2), sinusoid_batch),
    "metasgd": (lambda: jaxmeta.metasgd(REGRESSION, lr_init=0.01), sinusoid_batch),
    "reptile": (lambda: jaxmeta.reptile(REGRESSION, inner_lr=0.01, inner_steps=3), sinusoid_batch),
    "protonet": (lambda: metric_learner(PROTONET), prototype_batch),
}


def initial_params(name, tasks):
    if name == "protonet":
        (sx, sy), (qx, _) = jax.tree.map(lambda x: x[0], tasks)
        return float64(PROTONET.init(jax.random.key(0), sx, sy, qx)["params"])
    return float64(MLP_MODEL.init(jax.random.key(0), jnp.zeros((1, 1)))["params"])


def test_the_host_has_four_cpu_devices_for_these_tests():
    assert jax.device_count() == 4, "tests/conftest.py asks for 4 CPU devices before JAX starts"


@pytest.mark.parametrize("num_devices", [2, 4])
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_sharded_step_equals_the_single_device_step(name, num_devices):
    make_learner, make_batch = LEARNERS[name]
    learner, optimizer = make_learner(), optax.adam(1e-2)
    tasks = make_batch(8)
    state = jaxmeta.init_state(learner, optimizer, initial_params(name, tasks))
    mesh = task_mesh(num_devices=num_devices)
    single, sharded = jaxmeta.make_meta_step(learner, optimizer), make_sharded_meta_step(learner, optimizer, mesh)
    expected, sharded_state = state, replicate(state, mesh)
    for i in range(2):  # two steps: the optimizer state carries over too
        key = jax.random.key(10 + i)
        expected, expected_metrics = single(expected, tasks, key)
        sharded_state, metrics = sharded(sharded_state, shard_tasks(tasks, mesh), key)
    # atol: gradients that are zero in exact arithmetic (ProtoNet's last bias: distances ignore a shift)
    # are rounding noise of about 1e-11, summed in another order.
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)  # noqa: E731
    jax.tree.map(close, sharded_state, expected)
    jax.tree.map(close, metrics, expected_metrics)
    leaf = jax.tree.leaves(sharded_state.meta_params)[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == num_devices


def test_task_groups_on_each_device_give_the_same_step():
    learner, optimizer = jaxmeta.maml(REGRESSION, inner_lr=0.01), optax.sgd(0.1)
    tasks = sinusoid_batch(8)
    state = jaxmeta.init_state(learner, optimizer, initial_params("maml", tasks))
    mesh = task_mesh(num_devices=2)
    grouped = make_sharded_meta_step(learner, optimizer, mesh, task_chunk=2)(state, tasks, jax.random.key(3))
    expected = jaxmeta.make_meta_step(learner, optimizer)(state, tasks, jax.random.key(3))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13), grouped, expected)


def test_the_task_batch_is_split_and_a_batch_that_does_not_divide_is_refused():
    mesh = task_mesh(num_devices=4)
    tasks = shard_tasks(sinusoid_batch(8), mesh)
    x = tasks.support[0]
    assert {shard.data.shape[0] for shard in x.addressable_shards} == {2}
    learner, optimizer = jaxmeta.maml(REGRESSION, inner_lr=0.01), optax.sgd(0.1)
    state = jaxmeta.init_state(learner, optimizer, initial_params("maml", tasks))
    step = make_sharded_meta_step(learner, optimizer, mesh)
    message = "A meta-batch of 6 tasks does not split evenly over 4 devices. Use a multiple of 4"
    with pytest.raises(ValueError, match=message):
        step(state, sinusoid_batch(6), jax.random.key(0))
    with pytest.raises(ValueError, match="does not split evenly"):
        shard_tasks(sinusoid_batch(6), mesh)


def test_a_mesh_larger_than_the_host_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="num_devices=8 but only 4 devices are available .*jax_num_cpu_devices"):
        task_mesh(num_devices=8)
