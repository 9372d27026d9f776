"""jaxmeta.rl.trajectories: rewards-to-go, returns and the step mean against NumPy loops, masked steps excluded."""

import jax
import numpy as np

from jaxmeta.rl import Trajectories, average_return, returns, reward_to_go, step_mean
from jaxmeta.rl.trajectories import step_weights


def test_reward_to_go_and_returns_equal_a_numpy_loop():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(3, 5))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], np.float64)
    expected = np.zeros_like(rewards)
    for n in range(3):
        for t in range(5):
            expected[n, t] = sum(0.9 ** (u - t) * mask[n, u] * rewards[n, u] for u in range(t, 5))
    np.testing.assert_allclose(reward_to_go(rewards, mask, 0.9), expected, rtol=1e-12)
    batch = Trajectories(np.zeros((3, 5, 1)), np.zeros((3, 5, 1)), rewards, mask, np.array([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(returns(batch, 0.9), expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(average_return(batch), (mask * rewards).sum(1) @ [0.5, 0.25, 0.25], rtol=1e-12)
    assert jax.numpy.asarray(reward_to_go(rewards, mask, 0.9)).dtype == np.float64


def test_the_step_mean_weights_each_trajectorys_steps_by_its_weight_and_takes_no_gradient_into_the_weights():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 4))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], np.float64)
    weights = np.array([0.2, 0.3, 0.5])
    numerator = sum(weights[n] * values[n, t] for n in range(3) for t in range(4) if mask[n, t])
    denominator = sum(weights[n] for n in range(3) for t in range(4) if mask[n, t])
    batch = Trajectories(None, None, np.zeros((3, 4)), mask, weights)
    np.testing.assert_allclose(step_mean(values, batch), numerator / denominator, rtol=1e-12)
    np.testing.assert_allclose(step_weights(batch, np.float64).sum(), weights @ mask.sum(1), rtol=1e-12)  # mean length
    to_weights = jax.grad(lambda w: step_mean(jax.numpy.asarray(values), batch._replace(weights=w)))(weights)
    np.testing.assert_array_equal(to_weights, np.zeros(3))
