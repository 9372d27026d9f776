"""Episodes as sequences of labelled images (Santoro et al. 2016), for memory models.

An episode draws ``ways`` classes (optionally each rotated by a multiple of
90 degrees), ``instances`` distinct images of each, labels the classes
``0..ways-1`` in a random order, and shuffles the ``ways * instances`` images
into a random order. It is a :class:`jaxmeta.Task` with an empty support set
and the sequence as the query set: ``Task(support=(), query=(images [T, H, W, 1],
labels [T]))``, ``T = ways * instances``; the model sees each label one step
after its image (:mod:`jaxmeta.memory.sequence`).
"""

import flax.struct
import jax
import jax.numpy as jnp

from jaxmeta.core.types import PRNGKey, Task
from jaxmeta.data.episodes import check_episode, classification_tasks, with_rotations


def sequence_tasks(key: PRNGKey, images: jax.Array, batch_size: int, *, ways: int, instances: int,
                   rotate: bool = False, dtype=jnp.float32) -> Task:
    """A batch of sequence episodes: images ``[B, ways * instances, H, W, 1]``, labels ``[B, ways * instances]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> images = jnp.zeros((30, 20, 28, 28), jnp.uint8)
      >>> tasks = sequence_tasks(jax.random.key(0), images, 4, ways=5, instances=10)
      >>> tasks.query[0].shape, tasks.query[1].shape
      ((4, 50, 28, 28, 1), (4, 50))
    """
    sample_key, order_key = jax.random.split(key)
    grouped = classification_tasks(sample_key, images, batch_size, ways=ways, shots=instances, queries=0,
                                   rotate=rotate, dtype=dtype).support  # class by class
    length = ways * instances
    order = jax.vmap(lambda k: jax.random.permutation(k, length))(jax.random.split(order_key, batch_size))
    shuffled = jax.tree.map(lambda x: jax.vmap(lambda xs, o: xs[o])(x, order), grouped)
    return Task(support=(), query=shuffled)


@flax.struct.dataclass
class SequenceSampler:
    """A device-resident image array and the episode sizes, callable as ``sampler(key) -> Task``.

    The sequence counterpart of :class:`jaxmeta.data.episodes.EpisodeSampler`,
    a pytree whose only leaf is the image array, for :func:`jaxmeta.fit`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> sampler = SequenceSampler.create(jnp.zeros((30, 20, 28, 28), jnp.uint8), 8, ways=5, instances=10)
      >>> sampler(jax.random.key(0)).query[1].shape
      (8, 50)
    """

    images: jax.Array
    batch_size: int = flax.struct.field(pytree_node=False)
    ways: int = flax.struct.field(pytree_node=False)
    instances: int = flax.struct.field(pytree_node=False)
    rotate: bool = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, images, batch_size: int, *, ways: int, instances: int, rotate: bool = False):
        """Put ``images`` (``uint8 [classes, examples, H, W]``) on the device, with rotations if asked."""
        check_episode(images.shape[0], images.shape[1], ways=ways, shots=instances, queries=0)
        images = jnp.asarray(images)
        return cls(with_rotations(images) if rotate else images, batch_size, ways, instances, rotate)

    def __call__(self, key: PRNGKey) -> Task:
        return sequence_tasks(key, self.images, self.batch_size, ways=self.ways, instances=self.instances,
                              rotate=self.rotate)

