"""Unsupervised meta-learning: tasks made by clustering an embedding of unlabelled images (CACTUs).

Learn an embedding of the unlabelled images without their labels (:class:`ContrastiveEncoder` trained by
:func:`make_contrastive_step`), embed them (:func:`embed_images`), partition the embedding by k-means
several times (:func:`partitions`), and draw N-way K-shot tasks whose classes are clusters
(:class:`CactusSampler`); any meta-learner then trains on them unchanged.
"""

from jaxmeta.unsupervised.cactus import CactusSampler
from jaxmeta.unsupervised.clustering import KMeans
from jaxmeta.unsupervised.clustering import Partitions
from jaxmeta.unsupervised.clustering import cluster_purity
from jaxmeta.unsupervised.clustering import kmeans
from jaxmeta.unsupervised.clustering import partitions
from jaxmeta.unsupervised.clustering import squared_distances
from jaxmeta.unsupervised.contrastive import ContrastiveEncoder
from jaxmeta.unsupervised.contrastive import UnlabelledImages
from jaxmeta.unsupervised.contrastive import augment
from jaxmeta.unsupervised.contrastive import embed_images
from jaxmeta.unsupervised.contrastive import make_contrastive_step
from jaxmeta.unsupervised.contrastive import nt_xent
from jaxmeta.unsupervised.contrastive import random_affine

__all__ = ["CactusSampler", "ContrastiveEncoder", "KMeans", "Partitions", "UnlabelledImages", "augment",
           "cluster_purity", "embed_images", "kmeans", "make_contrastive_step", "nt_xent", "partitions",
           "random_affine", "squared_distances"]
