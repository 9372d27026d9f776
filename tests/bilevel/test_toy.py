"""DARTS's toy problem: where each hypergradient's alternating search converges, against the fixed points
worked out in jaxmeta.bilevel.toy's docstring."""

import numpy as np
import pytest

from jaxmeta.bilevel import darts_toy, finite_difference, first_order, implicit, toy_trajectory, unrolled
from jaxmeta.bilevel.toy import OPTIMUM, START

STEPS = 600


def test_the_exact_hypergradient_reaches_the_bilevel_optimum():
    path = toy_trajectory(implicit(darts_toy(), steps=1, lr=0.5, cg_steps=1), steps=STEPS)
    np.testing.assert_allclose(path[0], START)
    np.testing.assert_allclose(path[-1], OPTIMUM, atol=1e-6)


@pytest.mark.parametrize("xi", [0.5, 0.3])
def test_one_lookahead_step_converges_to_two_over_one_plus_two_xi(xi):
    """Unrolled and DARTS's finite difference take the same path (L_train is quadratic); xi = 1/2 is optimal."""
    path = toy_trajectory(unrolled(darts_toy(), steps=1, lr=xi), steps=STEPS)
    alpha = 2 / (1 + 2 * xi)
    np.testing.assert_allclose(path[-1], [alpha, alpha], atol=1e-6)
    np.testing.assert_allclose(toy_trajectory(finite_difference(darts_toy(), lr=xi), steps=STEPS), path, atol=1e-9)


def test_first_order_stops_at_two_two_off_the_optimum():
    path = toy_trajectory(first_order(darts_toy()), steps=STEPS)
    np.testing.assert_allclose(path[-1], [2.0, 2.0], atol=1e-6)
