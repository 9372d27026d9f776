"""Bilevel meta-learning beyond initialisations: hypergradients, DARTS's alternating search, example reweighting.

Four hypergradients with one signature (:func:`unrolled`, :func:`implicit`,
:func:`finite_difference`, :func:`first_order`), the alternating loop that
DARTS searches architectures with, its cell search space (:class:`DartsNetwork`,
:func:`derive_genotype`), its toy problem, and Ren et al.'s
learning to reweight examples.
"""

from jaxmeta.bilevel import operations
from jaxmeta.bilevel import search
from jaxmeta.bilevel.alternating import init_alternating
from jaxmeta.bilevel.alternating import make_alternating_step
from jaxmeta.bilevel.darts import DartsNetwork
from jaxmeta.bilevel.darts import Edge
from jaxmeta.bilevel.darts import Genotype
from jaxmeta.bilevel.darts import derive_genotype
from jaxmeta.bilevel.darts import init_architecture
from jaxmeta.bilevel.hypergradient import METHODS
from jaxmeta.bilevel.hypergradient import BilevelProblem
from jaxmeta.bilevel.hypergradient import Hypergradient
from jaxmeta.bilevel.hypergradient import HypergradientFn
from jaxmeta.bilevel.hypergradient import check_variables
from jaxmeta.bilevel.hypergradient import finite_difference
from jaxmeta.bilevel.hypergradient import first_order
from jaxmeta.bilevel.hypergradient import hypergradient
from jaxmeta.bilevel.hypergradient import implicit
from jaxmeta.bilevel.hypergradient import make_outer_step
from jaxmeta.bilevel.hypergradient import unrolled
from jaxmeta.bilevel.reweighting import WEIGHTINGS
from jaxmeta.bilevel.reweighting import ExampleWeights
from jaxmeta.bilevel.reweighting import example_weights
from jaxmeta.bilevel.reweighting import inverse_frequency_weights
from jaxmeta.bilevel.reweighting import make_weighted_step
from jaxmeta.bilevel.reweighting import normalised_positive_part
from jaxmeta.bilevel.reweighting import per_example_cross_entropy
from jaxmeta.bilevel.reweighting import train_weighted
from jaxmeta.bilevel.toy import darts_toy
from jaxmeta.bilevel.toy import toy_trajectory

__all__ = [
    "METHODS", "WEIGHTINGS", "BilevelProblem", "DartsNetwork", "Edge", "ExampleWeights", "Genotype",
    "Hypergradient", "HypergradientFn", "check_variables", "darts_toy", "derive_genotype", "example_weights",
    "finite_difference", "first_order", "hypergradient", "implicit", "init_alternating", "init_architecture",
    "inverse_frequency_weights", "make_alternating_step", "make_outer_step", "make_weighted_step",
    "normalised_positive_part", "operations", "per_example_cross_entropy", "search", "toy_trajectory",
    "train_weighted", "unrolled",
]
