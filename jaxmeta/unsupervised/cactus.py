r"""CACTUs tasks: N-way K-shot episodes whose classes are k-means clusters of an unsupervised embedding.

Hsu, Levine and Finn ("Unsupervised Learning via Meta-Learning", ICLR 2019)
meta-learn without labels: cluster an embedding of the unlabelled images
several times (:func:`jaxmeta.unsupervised.partitions`), and make each task
from one partition: ``ways`` distinct clusters of it, ``shots + queries``
distinct members of each, labelled ``0..ways-1`` in a random order. A cluster
with fewer than ``shots + queries`` members is never drawn, and a partition
with fewer than ``ways`` such clusters is never chosen.

:class:`CactusSampler` draws a batch of such tasks on the device, inside
``jit``, with the layout of :class:`jaxmeta.data.EpisodeSampler` (support
``[B, ways * shots, H, W, 1]`` and its labels, query likewise), so every
meta-learner trains from it unchanged.
"""

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.core.types import PRNGKey, Task
from jaxmeta.data.episodes import _examples, check_episode
from jaxmeta.unsupervised.clustering import Partitions


@flax.struct.dataclass
class CactusSampler:
    """Unlabelled images and their cluster partitions, callable as ``sampler(key) -> Task``.

    Attributes:
      images: ``uint8 [N, H, W]``, the unlabelled images on the device.
      members: ``[P, N]``: for each partition the image indices ordered by cluster, so that cluster ``c``'s
        members are ``members[p, starts[p, c] : starts[p, c] + sizes[p, c]]``.
      starts: ``[P, k]``, where each cluster's members begin in ``members``.
      sizes: ``[P, k]``, how many members each cluster has.
      usable: ``[P, k]``, whether a cluster has at least ``shots + queries`` members.
      partition_usable: ``[P]``, whether a partition has at least ``ways`` usable clusters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.unsupervised import partitions
      >>> images = jax.random.randint(jax.random.key(0), (60, 28, 28), 0, 256).astype(jnp.uint8)
      >>> clusters = partitions(jax.random.key(1), images.reshape(60, -1) / 255.0, k=6, count=2)
      >>> sampler = CactusSampler.create(images, clusters, 4, ways=2, shots=1, queries=2)
      >>> sampler(jax.random.key(2)).support[0].shape
      (4, 2, 28, 28, 1)
    """

    images: jax.Array
    members: jax.Array
    starts: jax.Array
    sizes: jax.Array
    usable: jax.Array
    partition_usable: jax.Array
    batch_size: int = flax.struct.field(pytree_node=False)
    ways: int = flax.struct.field(pytree_node=False)
    shots: int = flax.struct.field(pytree_node=False)
    queries: int = flax.struct.field(pytree_node=False)
    largest: int = flax.struct.field(pytree_node=False)
    dtype: str = flax.struct.field(pytree_node=False, default="float32")

    @classmethod
    def create(cls, images, clusters: Partitions, batch_size: int, *, ways: int, shots: int, queries: int,
               dtype: str = "float32") -> "CactusSampler":
        """Put ``images`` (``uint8 [N, H, W]``) and the cluster tables of ``clusters`` on the device.

        Raises a clear error when no partition has ``ways`` clusters of ``shots + queries`` members.
        """
        assignments = np.asarray(clusters.assignments)
        if getattr(images, "ndim", None) != 3 or assignments.ndim != 2 or assignments.shape[1] != images.shape[0]:
            raise ValueError(f"images must be [N, H, W] and the partitions' assignments [P, N] for the same N; got "
                             f"images {getattr(images, 'shape', None)} and assignments {assignments.shape}.")
        sizes = np.asarray(clusters.sizes)
        check_episode(int(sizes.shape[1]), int(sizes.max()), ways=ways, shots=shots, queries=queries)
        usable = sizes >= shots + queries
        partition_usable = usable.sum(axis=1) >= ways
        if not partition_usable.any():
            raise ValueError(
                f"No partition has {ways} clusters of at least shots + queries = {shots + queries} images "
                f"(the most in one partition: {int(usable.sum(axis=1).max())}). Use fewer clusters (a smaller k), "
                "fewer ways, or fewer shots and queries.")
        members = np.argsort(assignments, axis=1, kind="stable").astype(np.int32)
        starts = (np.cumsum(sizes, axis=1) - sizes).astype(np.int32)
        return cls(jnp.asarray(images), jnp.asarray(members), jnp.asarray(starts), jnp.asarray(sizes, jnp.int32),
                   jnp.asarray(usable), jnp.asarray(partition_usable), batch_size, ways, shots, queries,
                   int(sizes.max()), np.dtype(dtype).name)

    def usable_clusters(self) -> np.ndarray:
        """``[P]``: how many clusters of each partition tasks can be drawn from."""
        return np.asarray(self.usable.sum(axis=1))

    def summary(self) -> str:
        """What the partitions give: usable clusters per partition and the images they hold."""
        counts = self.usable_clusters()
        held = np.asarray((self.sizes * self.usable).sum(axis=1))
        return (f"{int(np.asarray(self.partition_usable).sum())} of {counts.size} partitions usable for "
                f"{self.ways}-way tasks of {self.shots + self.queries} images per class; usable clusters per "
                f"partition: median {np.median(counts):.0f} (min {counts.min()}, max {counts.max()}) of "
                f"{self.sizes.shape[1]}, holding a median {np.median(held):.0f} of {self.images.shape[0]} images")

    def indices(self, key: PRNGKey) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One task's ``(partition, clusters [ways], images [ways, shots + queries])`` (image indices)."""
        k_partition, k_clusters, k_members = jax.random.split(key, 3)
        partition = jax.random.categorical(k_partition, jnp.where(self.partition_usable, 0.0, -jnp.inf))
        # Distinct draws without replacement: the top-k of i.i.d. uniform scores, excluded ones scored -1.
        scores = jnp.where(self.usable[partition], jax.random.uniform(k_clusters, self.usable.shape[1:]), -1.0)
        clusters = jax.lax.top_k(scores, self.ways)[1]
        ranks = jnp.arange(self.largest)
        member_scores = jnp.where(ranks < self.sizes[partition, clusters][:, None],
                                  jax.random.uniform(k_members, (self.ways, self.largest)), -1.0)
        picked = jax.lax.top_k(member_scores, self.shots + self.queries)[1]
        images = self.members[partition, self.starts[partition, clusters][:, None] + picked]
        return partition, clusters.astype(jnp.int32), images

    def __call__(self, key: PRNGKey) -> Task:
        def one(key):
            index_key, label_key = jax.random.split(key)
            _, _, images = self.indices(index_key)
            labels = jnp.argsort(jax.random.uniform(label_key, (self.ways,))).astype(jnp.int32)
            return images, labels

        images, labels = jax.vmap(one)(jax.random.split(key, self.batch_size))
        pixels = self.images[images]  # [B, ways, shots + queries, H, W]
        return Task(_examples(pixels[:, :, :self.shots], labels, self.dtype),
                    _examples(pixels[:, :, self.shots:], labels, self.dtype))

