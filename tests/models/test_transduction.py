"""Non-transductive prediction: each query beside the support set alone, against the explicit concatenation;
it differs from transductive prediction only through batch norm; a model without batch norm is refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta import Task
from jaxmeta.models import Conv4, MLP, one_query_at_a_time, uses_batch_norm, with_support_inputs


def _conv4_and_images():
    model = Conv4(num_classes=3, features=4, blocks=2)
    params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
    keys = jax.random.split(jax.random.key(1), 2)
    return model, params, jax.random.uniform(keys[0], (3, 8, 8, 1)), jax.random.uniform(keys[1], (5, 8, 8, 1))


def test_each_query_is_predicted_beside_the_support_set_alone():
    model, params, support, queries = _conv4_and_images()
    apply = one_query_at_a_time(model, support)
    logits = apply(params, (queries, support))
    for i in range(len(queries)):
        alone = model.apply({"params": params}, jnp.concatenate([support, queries[i:i + 1]]))[-1]
        np.testing.assert_allclose(logits[i], alone, rtol=1e-12)
    together = model.apply({"params": params}, queries)  # transductive: the queries' own statistics
    assert not np.allclose(logits, together, rtol=1e-3)


def test_support_inputs_travel_with_the_queries():
    x_s, y_s, x_q, y_q = jnp.zeros((2, 3, 1)), jnp.zeros((2, 3)), jnp.ones((2, 4, 1)), jnp.ones((2, 4))
    tasks = with_support_inputs(Task((x_s, y_s), (x_q, y_q)))
    (queries, support), labels = tasks.query
    assert queries is x_q and support is x_s and labels is y_q and tasks.support == (x_s, y_s)


def test_a_model_without_batch_norm_is_refused():
    assert uses_batch_norm(Conv4(num_classes=2, features=2, blocks=1), jnp.zeros((1, 4, 4, 1)))
    assert not uses_batch_norm(MLP((4, 1)), jnp.zeros((1, 1)))
    with pytest.raises(ValueError, match="MLP has no batch norm.*Drop the transductive setting"):
        one_query_at_a_time(MLP((4, 1)), jnp.zeros((1, 1)))
