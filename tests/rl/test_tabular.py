"""jaxmeta.rl.tabular: the enumeration covers every trajectory once with probabilities that sum to one, and the
closed-form return is what sampling the policy gives."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.rl import TabularMDP, enumerate_trajectories, expected_return, rollout, softmax_policy, tabular_environment
from jaxmeta.rl.trajectories import returns

MDP = TabularMDP(transitions=jnp.array([[1, 2], [0, 2], [2, 1]]), start=0, horizon=3)
REWARDS = jnp.array([[0.5, -1.0], [2.0, 0.3], [0.0, 1.0]])
THETA = jnp.array([[0.2, -0.4], [0.7, 0.1], [-1.0, 0.5]])


def test_every_action_sequence_once_with_its_probability():
    batch = enumerate_trajectories(MDP, REWARDS, THETA)
    assert len({tuple(a) for a in np.asarray(batch.actions).tolist()}) == 2 ** 3 == batch.actions.shape[0]
    np.testing.assert_allclose(batch.weights.sum(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(batch.observations[:, 0], 0)
    np.testing.assert_array_equal(batch.observations[:, 1:], MDP.transitions[batch.observations[:, :-1],
                                                                              batch.actions[:, :-1]])


def test_the_closed_form_return_is_the_mean_of_sampled_returns():
    policy, count = softmax_policy(), 20000

    def sample(key):
        def walk(state, k):
            action = policy.sample(THETA, state, k)
            return MDP.transitions[state, action], REWARDS[state, action]

        return jax.lax.scan(walk, jnp.asarray(0), jax.random.split(key, MDP.horizon))[1]

    rewards = jax.vmap(sample)(jax.random.split(jax.random.key(0), count))
    discounted = rewards @ (0.9 ** jnp.arange(3.0))
    standard_error = float(discounted.std()) / np.sqrt(count)
    exact = float(expected_return(MDP, REWARDS, THETA, 0.9))
    assert abs(float(discounted.mean()) - exact) < 4 * standard_error
    np.testing.assert_allclose(exact, float(enumerate_trajectories(MDP, REWARDS, THETA).weights
                                            @ returns(enumerate_trajectories(MDP, REWARDS, THETA), 0.9)), rtol=1e-6)


def test_sampled_rollouts_of_the_tabular_environment_follow_the_enumeration():
    env, policy = tabular_environment(MDP), softmax_policy()
    batch = rollout(env, policy, THETA, REWARDS, jax.random.key(1), num_trajectories=20000)
    exact = enumerate_trajectories(MDP, REWARDS, THETA)
    np.testing.assert_array_equal(batch.mask, 1.0)
    np.testing.assert_array_equal(batch.observations[:, 1:], MDP.transitions[batch.observations[:, :-1],
                                                                              batch.actions[:, :-1]])
    sequences = np.asarray(batch.actions) @ (2 ** np.arange(2, -1, -1))  # each action sequence as a number
    frequencies = np.bincount(sequences, minlength=8) / 20000
    enumerated = np.asarray(exact.actions) @ (2 ** np.arange(2, -1, -1))
    np.testing.assert_allclose(frequencies[enumerated], exact.weights, atol=4 * np.sqrt(0.25 / 20000))
