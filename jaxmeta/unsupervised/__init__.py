"""Unsupervised meta-learning: tasks made by clustering an embedding of unlabelled images (CACTUs).

Embed the unlabelled images, partition the embedding by k-means several times
(:func:`partitions`), and draw N-way K-shot tasks whose classes are clusters
(:class:`CactusSampler`); any meta-learner then trains on them unchanged.
"""

from jaxmeta.unsupervised.cactus import CactusSampler
from jaxmeta.unsupervised.clustering import KMeans
from jaxmeta.unsupervised.clustering import Partitions
from jaxmeta.unsupervised.clustering import kmeans
from jaxmeta.unsupervised.clustering import partitions
from jaxmeta.unsupervised.clustering import squared_distances

__all__ = ["CactusSampler", "KMeans", "Partitions", "kmeans", "partitions", "squared_distances"]
