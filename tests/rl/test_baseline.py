"""jaxmeta.rl.baseline: the linear feature baseline is NumPy's ridge regression on the unmasked steps."""

import numpy as np

from jaxmeta.rl import Trajectories, linear_feature_baseline


def test_the_fit_is_the_ridge_solution_on_the_unmasked_steps():
    rng = np.random.default_rng(0)
    observations, rewards = rng.normal(size=(4, 6, 2)), rng.normal(size=(4, 6))
    mask = np.ones((4, 6))
    mask[1, 3:] = 0
    batch = Trajectories(observations, np.zeros((4, 6, 2)), rewards, mask, np.full(4, 0.25))
    values = np.asarray(linear_feature_baseline(batch, discount=0.9, ridge=1e-3))
    u = np.broadcast_to(np.arange(6)[None, :, None] / 100, (4, 6, 1))
    phi = np.concatenate([observations, observations ** 2, u, u ** 2, u ** 3, np.ones_like(u)], -1)
    targets = np.zeros_like(rewards)
    for t in reversed(range(6)):
        targets[:, t] = mask[:, t] * rewards[:, t] + (0.9 * targets[:, t + 1] if t < 5 else 0)
    rows = mask.reshape(-1) > 0
    f, y = phi.reshape(-1, 8)[rows], targets.reshape(-1)[rows]
    w = np.linalg.solve(f.T @ f + 1e-3 * np.eye(8), f.T @ y)
    np.testing.assert_allclose(values, phi @ w, rtol=1e-6, atol=1e-8)
