r"""A contrastive image embedding learned without labels (SimCLR, Chen et al., ICML 2020), for CACTUs.

Two random deformations of the same image should embed close together and
far from the other images of the batch. With :math:`z_1..z_{2B}` the
projections of the two views of :math:`B` images, normalised to unit length,
and :math:`p(i)` the other view of :math:`i`, the NT-Xent loss is

.. math::
    L = \frac{1}{2B} \sum_{i=1}^{2B} -\log
        \frac{\exp(z_i^\top z_{p(i)} / \tau)}{\sum_{j \ne i} \exp(z_i^\top z_j / \tau)} .

The encoder (:class:`ContrastiveEncoder`) is the conv-4 trunk
(:class:`~jaxmeta.models.ConvEmbedding`) with a two-layer projection head; the
embedding that is clustered is the trunk's output, as SimCLR recommends for
downstream use. The views are random affine deformations
(:func:`random_affine`: rotation, scale, shear and translation, bilinear),
the variation between two people's drawings of one Omniglot character.

Why contrastive and not an autoencoder (Hsu et al. used ACAI, an adversarially
regularised autoencoder): a reconstruction code keeps where the strokes are,
pixel by pixel, so k-means on it groups images by layout; a code trained to
ignore the deformations above groups drawings of one character together, which
is what a task's class should be. It trains on the CPU in minutes: one step is
a forward and backward pass of the conv-4 on ``2B`` images.

:func:`make_contrastive_step` has the meta step's signature, so
:func:`jaxmeta.fit` and :func:`jaxmeta.training.train` run it (progress bar,
time budget, atomic checkpoints and exact resume) with :class:`UnlabelledImages`
as its source.
"""

import math
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmeta.core.types import ApplyFn, Params, PRNGKey
from jaxmeta.models.conv import ConvEmbedding
from jaxmeta.training.classifier import make_loss_step


class ContrastiveEncoder(nn.Module):
    """The conv-4 trunk and a projection head: ``[N, H, W, 1]`` images -> ``[N, projection]`` (or, with
    ``project=False``, the trunk's ``[N, D]`` embedding).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> encoder = ContrastiveEncoder(features=8)
      >>> params = encoder.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)))["params"]
      >>> images = jnp.zeros((3, 28, 28, 1))
      >>> variables = {"params": params}
      >>> encoder.apply(variables, images).shape, encoder.apply(variables, images, project=False).shape
      ((3, 64), (3, 8))
    """

    features: int = 64
    blocks: int = 4
    hidden: int = 256
    projection: int = 64
    conv: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, project: bool = True) -> jax.Array:
        h = ConvEmbedding(self.features, blocks=self.blocks, conv=self.conv, name="trunk")(x)
        if not project:
            return h
        return nn.Dense(self.projection, name="projection_1")(nn.relu(nn.Dense(self.hidden, name="projection_0")(h)))


def random_affine(key: PRNGKey, image: jax.Array, *, rotation: float = 10.0, scale: float = 0.15,
                  shear: float = 0.2, translation: float = 2.0) -> jax.Array:
    r"""One image ``[H, W]`` (float) warped by a random affine map about its centre, bilinear, zeros outside.

    Rotation :math:`\theta \sim U(\pm\text{rotation})` degrees, a scale per axis :math:`U(1 \pm \text{scale})`,
    shear :math:`U(\pm\text{shear})` and a shift :math:`U(\pm\text{translation})` pixels per axis. All
    zero gives the image back unchanged.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> image = jnp.zeros((5, 5)).at[2, 2].set(1.0)
      >>> same = random_affine(jax.random.key(0), image, rotation=0, scale=0, shear=0, translation=0)
      >>> bool(jnp.array_equal(same, image))
      True
    """
    k_rot, k_scale, k_shear, k_shift = jax.random.split(key, 4)
    theta = jnp.deg2rad(jax.random.uniform(k_rot, (), minval=-rotation, maxval=rotation))
    s = 1.0 + jax.random.uniform(k_scale, (2,), minval=-scale, maxval=scale)
    h = jax.random.uniform(k_shear, (), minval=-shear, maxval=shear)
    shift = jax.random.uniform(k_shift, (2,), minval=-translation, maxval=translation)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    # The map is rotation @ shear @ scale; each output pixel reads the source at its inverse, in closed form
    # (scale^-1 @ shear^-1 @ rotation^T), with no linear solve.
    inverse = jnp.diag(1.0 / s) @ jnp.array([[1.0, -h], [0.0, 1.0]]) @ jnp.array([[cos, sin], [-sin, cos]])
    height, width = image.shape
    centre = jnp.array([(height - 1) / 2, (width - 1) / 2])
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=image.dtype), jnp.arange(width, dtype=image.dtype),
                              indexing="ij")
    out = jnp.stack([rows.ravel(), cols.ravel()]) - (centre + shift)[:, None]
    source = inverse @ out + centre[:, None]  # where each output pixel comes from
    return jax.scipy.ndimage.map_coordinates(image, list(source), order=1, mode="constant", cval=0.0).reshape(
        height, width)


def augment(key: PRNGKey, images: jax.Array, **deformation: float) -> jax.Array:
    """A random affine view of each image: ``[B, H, W]`` (``uint8`` 0..255 or float in [0, 1]) ->
    ``float32 [B, H, W, 1]`` in [0, 1]; ``deformation`` goes to :func:`random_affine`."""
    x = images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images.astype(jnp.float32)
    views = jax.vmap(lambda k, image: random_affine(k, image, **deformation))(
        jax.random.split(key, images.shape[0]), x)
    return jnp.clip(views, 0.0, 1.0)[..., None]


def nt_xent(first: jax.Array, second: jax.Array, temperature: float = 0.5) -> tuple[jax.Array, jax.Array]:
    """SimCLR's NT-Xent loss of two views ``[B, D]`` (row ``i`` of each is the same image; the module
    docstring's formula), and the fraction of the ``2B`` views whose most similar other view is their pair.

    Example:
      >>> import jax.numpy as jnp
      >>> views = jnp.eye(3)  # three orthogonal images, each view exactly its pair
      >>> loss, accuracy = nt_xent(views, views, temperature=0.5)
      >>> round(float(loss), 3), float(accuracy)  # log(1 + 4 exp(-1 / 0.5)): 4 negatives at similarity 0
      (0.433, 1.0)
    """
    z = jnp.concatenate([first, second])
    z = z / (jnp.linalg.norm(z, axis=1, keepdims=True) + 1e-12)
    n = first.shape[0]
    similarity = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, z @ z.T / temperature)
    pair = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(similarity, pair))
    return loss, jnp.mean(jnp.argmax(similarity, axis=1) == pair)


@flax.struct.dataclass
class UnlabelledImages:
    """A jit-able source of batches of ``batch_size`` distinct images ``[B, H, W]`` drawn from ``images [N, H, W]``;
    a pytree holding them on the device, so :func:`jaxmeta.fit` passes it as data.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> UnlabelledImages.create(jnp.zeros((10, 28, 28), jnp.uint8), batch_size=4)(jax.random.key(0)).shape
      (4, 28, 28)
    """

    images: jax.Array
    batch_size: int = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, images: Any, *, batch_size: int) -> "UnlabelledImages":
        """From an ``[N, H, W]`` array; a clear error for a batch larger than the set or a bad shape."""
        if getattr(images, "ndim", None) != 3:
            raise ValueError(f"images must be [N, H, W], got shape {getattr(images, 'shape', None)}; flatten "
                             "Omniglot's [characters, drawings, H, W] with images.reshape(-1, H, W).")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 2 <= batch_size <= len(images):
            raise ValueError(f"batch_size must be an int from 2 (a contrastive batch needs other images) to the "
                             f"{len(images)} images, got {batch_size!r}.")
        return cls(jnp.asarray(images), batch_size)

    def __call__(self, key: PRNGKey) -> jax.Array:
        index = jax.lax.top_k(jax.random.uniform(key, (self.images.shape[0],)), self.batch_size)[1]
        return self.images[index]


def make_contrastive_step(apply_fn: ApplyFn, optimizer: optax.GradientTransformation, *,
                          temperature: float = 0.5, **deformation: float) -> Callable:
    """One optax step on the NT-Xent loss of two :func:`augment` views of a batch, with the meta step's
    signature ``step(state, images, key) -> (state, {"loss", "accuracy"})``.

    ``apply_fn(params, images) -> projections`` (e.g. a :class:`ContrastiveEncoder`'s ``apply``). The two
    views go through the network as one batch, so batch-statistics norms see both.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import fit
      >>> from jaxmeta.training import init_classifier
      >>> encoder = ContrastiveEncoder(features=4, blocks=2, hidden=8, projection=4)
      >>> params = encoder.init(jax.random.key(0), jnp.zeros((1, 12, 12, 1)))["params"]
      >>> apply = lambda p, x: encoder.apply({"params": p}, x)
      >>> images = jax.random.randint(jax.random.key(1), (16, 12, 12), 0, 256).astype(jnp.uint8)
      >>> step = make_contrastive_step(apply, optax.adam(1e-2))
      >>> source = UnlabelledImages.create(images, batch_size=8)
      >>> result = fit(step, init_classifier(params, optax.adam(1e-2)), source, key=jax.random.key(2), num_steps=4,
      ...              steps_per_call=2, progress=False)
      >>> result.history["loss"].shape
      (4,)
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    for name, value in deformation.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"the deformation {name} must be a non-negative number, got {value!r}.")

    def loss_fn(params, images, *, key):
        first_key, second_key = jax.random.split(key)
        views = jnp.concatenate([augment(first_key, images, **deformation),
                                 augment(second_key, images, **deformation)])
        z = apply_fn(params, views)
        loss, accuracy = nt_xent(z[:images.shape[0]], z[images.shape[0]:], temperature)
        return loss, {"accuracy": accuracy}

    return make_loss_step(loss_fn, optimizer)


def embed_images(embed_fn: ApplyFn, params: Params, images: Any, *, batch_size: int = 500) -> np.ndarray:
    """``[N, D]`` embeddings of ``images [N, H, W]`` (``uint8`` or float), in batches of ``batch_size`` (each
    normalised by batch-statistics layers as a batch of its own).

    Example:
      >>> import jax.numpy as jnp
      >>> embed_images(lambda p, x: x.reshape(len(x), -1)[:, :2] * p, 2.0, jnp.ones((5, 3, 3)), batch_size=2).shape
      (5, 2)
    """
    apply = jax.jit(embed_fn)
    return np.concatenate([np.asarray(apply(params, jnp.asarray(images[start:start + batch_size])[..., None]))
                           for start in range(0, len(images), batch_size)])
