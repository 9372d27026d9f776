r"""N-way K-shot classification episodes from a ``[classes, examples, H, W]`` image array.

A task draws ``ways`` distinct classes, then ``shots + queries`` distinct
examples of each (support and query are disjoint), optionally one rotation
by a multiple of 90 degrees per class (the same for every image of that
class in the task), and relabels the classes ``0..ways-1`` in a random
order. Sampling is split in two pure stages:

1. :func:`sample_indices` draws the indices with ``jax.random`` (cheap, jit-
   and vmap-compatible);
2. :func:`gather` builds the images from them, from a device array
   (``jax.numpy``) or from host memory (``numpy``) with the same result.

So :func:`classification_tasks` samples a whole batch on the device inside
``jit``, and :class:`HostTaskIterator` gives the identical tasks for data
that stays on the host. Images are stored as ``uint8`` (ink = 255) and
returned as ``float32`` in [0, 1] with a channel axis (or, with
``dtype="uint8"``, as stored: a quarter of the memory traffic). With
``rotate=True``, :func:`with_rotations` (used by :class:`EpisodeSampler`)
pre-computes the four rotations so that sampling is a plain gather.
"""

from collections.abc import Iterator
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.core.types import PRNGKey, Task


class EpisodeIndices(NamedTuple):
    """What one task is made of: ``classes [ways]``, ``examples [ways, shots + queries]``,
    ``rotations [ways]`` (quarter turns) and ``labels [ways]`` (the label of each drawn class)."""

    classes: jax.Array
    examples: jax.Array
    rotations: jax.Array
    labels: jax.Array


def check_episode(num_classes: int, num_examples: int, *, ways: int, shots: int, queries: int) -> None:
    """A clear error when the episode cannot be drawn from ``num_classes x num_examples``."""
    for name, value in (("ways", ways), ("shots", shots), ("queries", queries)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "queries" else 1):
            kind = "non-negative" if name == "queries" else "positive"
            raise ValueError(f"{name} must be a {kind} int, got {value!r}.")
    if ways > num_classes:
        raise ValueError(
            f"A {ways}-way task needs {ways} classes, but the split has only {num_classes}. Use at most "
            f"{num_classes} ways, or a split with more classes (e.g. rotations as new classes)."
        )
    if shots + queries > num_examples:
        raise ValueError(
            f"shots + queries = {shots} + {queries} = {shots + queries} examples per class, but each class has "
            f"only {num_examples} (Omniglot: 20 drawings per character). Lower shots or queries."
        )


def sample_indices(key: PRNGKey, num_classes: int, num_examples: int, *, ways: int, shots: int, queries: int,
                   rotate: bool = False) -> EpisodeIndices:
    """Draw the indices of one task (see the module docstring).

    Drawing without replacement is the top-k of i.i.d. uniform scores, which
    is uniform over subsets and much cheaper on the CPU than a permutation.
    """
    k_classes, k_examples, k_rotations, k_labels = jax.random.split(key, 4)
    classes = jax.lax.top_k(jax.random.uniform(k_classes, (num_classes,)), ways)[1]
    examples = jax.lax.top_k(jax.random.uniform(k_examples, (ways, num_examples)), shots + queries)[1]
    rotations = jax.random.randint(k_rotations, (ways,), 0, 4) if rotate else jnp.zeros((ways,), jnp.int32)
    labels = jnp.argsort(jax.random.uniform(k_labels, (ways,))).astype(jnp.int32)
    return EpisodeIndices(classes.astype(jnp.int32), examples.astype(jnp.int32), rotations.astype(jnp.int32), labels)


def _episode_images(images, idx: EpisodeIndices):
    """``[..., ways, n, H, W]`` images of the drawn classes and examples, rotated per class."""
    xp = np if isinstance(images, np.ndarray) else jnp
    if images.ndim == 5:  # [classes, 4, examples, H, W] from with_rotations: a plain gather
        return images[idx.classes[..., None], idx.rotations[..., None], idx.examples]
    x = images[idx.classes[..., None], idx.examples]  # [classes, examples, H, W]: select among four rotations
    turns = idx.rotations[..., None, None, None]
    rotated = x
    for quarter in range(1, 4):
        rotated = xp.where(turns == quarter, xp.rot90(x, quarter, axes=(-2, -1)), rotated)
    return rotated


def _examples(images, labels, dtype):
    """``[..., ways, count, H, W]`` pixels and ``[..., ways]`` labels ->
    ``([..., ways * count, H, W, 1], [..., ways * count])``."""
    xp = np if isinstance(images, np.ndarray) else jnp
    *batch, ways, count, height, width = images.shape
    pixels = images.reshape(*batch, ways * count, height, width, 1)
    if np.dtype(dtype) != np.uint8:
        pixels = pixels.astype(dtype) * np.asarray(1 / 255, dtype)
    labels = xp.broadcast_to(labels.astype(xp.int32)[..., None], (*batch, ways, count))
    return pixels, labels.reshape(*batch, ways * count)


def gather(images, indices: EpisodeIndices, *, shots: int, dtype=np.float32) -> Task:
    """The task's images and labels; ``images`` may be a ``jax`` or a ``numpy`` array (same result).

    ``indices`` may carry leading batch axes (a batch of tasks); the result then has them too.
    ``dtype=float32`` gives pixels in [0, 1]; ``dtype=uint8`` keeps the stored 0..255 values,
    a quarter of the memory traffic, for models that scale their input themselves.
    """
    idx = jax.tree.map(np.asarray, indices) if isinstance(images, np.ndarray) else indices
    rotated = _episode_images(images, idx)
    return Task(_examples(rotated[..., :shots, :, :], idx.labels, dtype),
                _examples(rotated[..., shots:, :, :], idx.labels, dtype))


def with_rotations(images):
    """``[classes, examples, H, W] -> [classes, 4, examples, H, W]``: every class at 0/90/180/270 degrees.

    Sampling from this layout with ``rotate=True`` is a plain gather, several
    times faster than rotating inside each task, for 4x the memory.
    """
    xp = np if isinstance(images, np.ndarray) else jnp
    return xp.stack([xp.rot90(images, r, axes=(-2, -1)) for r in range(4)], axis=1)


def _sizes(images) -> tuple[int, int]:
    """(classes, examples per class) of a ``[C, E, H, W]`` or ``[C, 4, E, H, W]`` array."""
    return images.shape[0], images.shape[-3]


def classification_tasks(key: PRNGKey, images: jax.Array, batch_size: int, *, ways: int, shots: int,
                         queries: int, rotate: bool = False, dtype=jnp.float32) -> Task:
    """A batch of tasks sampled on the device: support ``[B, ways*shots, H, W, 1]``, labels ``[B, ways*shots]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> images = jnp.zeros((30, 20, 28, 28), jnp.uint8)
      >>> tasks = classification_tasks(jax.random.key(0), images, 4, ways=5, shots=1, queries=15)
      >>> tasks.support[0].shape, tasks.query[1].shape
      ((4, 5, 28, 28, 1), (4, 75))
    """
    num_classes, num_examples = _sizes(images)
    check_episode(num_classes, num_examples, ways=ways, shots=shots, queries=queries)
    indices = jax.vmap(lambda k: sample_indices(
        k, num_classes, num_examples, ways=ways, shots=shots, queries=queries, rotate=rotate,
    ))(jax.random.split(key, batch_size))
    return gather(images, indices, shots=shots, dtype=dtype)


def semi_supervised_tasks(key: PRNGKey, images: jax.Array, batch_size: int, *, ways: int, shots: int,
                          queries: int, unlabeled: int, distractors: int = 0, rotate: bool = False,
                          dtype=jnp.float32) -> Task:
    """Episodes with unlabeled support examples (Ren et al. 2018), labelled ``-1``.

    Each task draws ``ways + distractors`` classes. The support set holds, in
    this order: ``shots`` labeled examples of each of the ``ways`` classes,
    ``unlabeled`` further examples of each of them, and ``unlabeled`` examples
    of each distractor class (a class that is not in the task); the last two
    groups carry the label ``-1``. The query set holds ``queries`` examples of
    each of the ``ways`` classes; all examples of a class are distinct.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> images = jnp.zeros((30, 20, 28, 28), jnp.uint8)
      >>> tasks = semi_supervised_tasks(jax.random.key(0), images, 2, ways=5, shots=1, queries=5, unlabeled=2,
      ...                               distractors=3)
      >>> tasks.support[0].shape, int((tasks.support[1] == -1).sum(axis=1)[0])
      ((2, 21, 28, 28, 1), 16)
    """
    num_classes, num_examples = _sizes(images)
    if isinstance(unlabeled, bool) or not isinstance(unlabeled, int) or unlabeled < 0:
        raise ValueError(f"unlabeled must be a non-negative int, got {unlabeled!r}.")
    if isinstance(distractors, bool) or not isinstance(distractors, int) or distractors < 0:
        raise ValueError(f"distractors must be a non-negative int, got {distractors!r}.")
    check_episode(num_classes, num_examples, ways=ways + distractors, shots=shots, queries=queries + unlabeled)

    def one(k):
        idx = sample_indices(k, num_classes, num_examples, ways=ways + distractors, shots=shots,
                             queries=queries + unlabeled, rotate=rotate)
        labels = jnp.argsort(jnp.argsort(idx.labels[:ways])).astype(jnp.int32)  # a random order of 0..ways-1
        return idx, labels

    idx, labels = jax.vmap(one)(jax.random.split(key, batch_size))
    rotated = _episode_images(images, idx)  # [B, ways + distractors, shots + unlabeled + queries, H, W]
    task_classes, other_classes = rotated[:, :ways], rotated[:, ways:]
    none = jnp.full(labels.shape[:1] + (ways,), -1, jnp.int32)
    groups = [
        _examples(task_classes[:, :, :shots], labels, dtype),
        _examples(task_classes[:, :, shots:shots + unlabeled], none, dtype),
        _examples(other_classes[:, :, :unlabeled], none[:, :distractors], dtype),
    ]
    support = tuple(jnp.concatenate(parts, axis=1) for parts in zip(*groups))
    return Task(support, _examples(task_classes[:, :, shots + unlabeled:], labels, dtype))


class HostTaskIterator:
    """Endless batches of tasks gathered on the host from a NumPy array.

    Batch ``i`` uses the key ``fold_in(key(seed), i)`` and equals
    ``classification_tasks(fold_in(key(seed), i), images, ...)`` on the device.
    With ``share`` (a slice of the task indices ``0..batch_size-1``, e.g.
    :func:`jaxmeta.distributed.process_share` on several hosts) it gathers
    only those tasks of each batch: processes with disjoint shares draw
    disjoint parts of the same global batch.
    """

    def __init__(self, images: np.ndarray, batch_size: int, *, ways: int, shots: int, queries: int,
                 rotate: bool = False, seed: int = 0, share: slice = slice(None)):
        num_classes, num_examples = _sizes(images)
        check_episode(num_classes, num_examples, ways=ways, shots=shots, queries=queries)
        self.images, self.batch_size, self.shots, self.seed = images, batch_size, shots, seed
        self.share = share
        sizes: dict[str, Any] = dict(ways=ways, shots=shots, queries=queries, rotate=rotate)
        self._indices = jax.jit(lambda k: jax.vmap(
            lambda kk: sample_indices(kk, num_classes, num_examples, **sizes))(jax.random.split(k, batch_size)))
        self.step = 0

    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        key = jax.random.fold_in(jax.random.key(self.seed), self.step)
        self.step += 1
        indices = jax.tree.map(lambda x: np.asarray(x)[self.share], self._indices(key))
        return gather(self.images, indices, shots=self.shots)


@flax.struct.dataclass
class EpisodeSampler:
    """A device-resident image array and the episode sizes, callable as ``sampler(key) -> Task``.

    It is a pytree whose only leaf is the image array, so ``jaxmeta.fit``
    passes it into the compiled loop as an argument (a closed-over array
    would be baked into the program as a constant).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> sampler = EpisodeSampler.create(jnp.zeros((30, 20, 28, 28), jnp.uint8), 8, ways=5, shots=1,
      ...                                 queries=15, rotate=True)
      >>> sampler(jax.random.key(0)).support[0].shape
      (8, 5, 28, 28, 1)
    """

    images: jax.Array
    batch_size: int = flax.struct.field(pytree_node=False)
    ways: int = flax.struct.field(pytree_node=False)
    shots: int = flax.struct.field(pytree_node=False)
    queries: int = flax.struct.field(pytree_node=False)
    rotate: bool = flax.struct.field(pytree_node=False)
    dtype: str = flax.struct.field(pytree_node=False, default="float32")

    @classmethod
    def create(cls, images, batch_size: int, *, ways: int, shots: int, queries: int, rotate: bool = False,
               dtype: str = "float32"):
        """Put ``images`` (``uint8 [classes, examples, H, W]``) on the device, with rotations if asked."""
        check_episode(images.shape[0], images.shape[1], ways=ways, shots=shots, queries=queries)
        images = jnp.asarray(images)
        return cls(with_rotations(images) if rotate else images, batch_size, ways, shots, queries, rotate,
                   np.dtype(dtype).name)

    def __call__(self, key: PRNGKey) -> Task:
        return classification_tasks(key, self.images, self.batch_size, ways=self.ways, shots=self.shots,
                                    queries=self.queries, rotate=self.rotate, dtype=self.dtype)
